#pragma once

/// splitshare's explain area: Grad-CAM, figures and contact sheets.

#include <splitshare/explain/colormap.h>
#include <splitshare/explain/figure.h>
#include <splitshare/explain/gradcam.h>
#include <splitshare/explain/gradcam_folder.h>
#include <splitshare/explain/mistakes_sheet.h>
#include <splitshare/explain/run_figures.h>
