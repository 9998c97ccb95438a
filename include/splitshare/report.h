#pragma once

/// splitshare's report area: report.html and its charts.

#include <splitshare/report/charts.h>
#include <splitshare/report/html.h>
#include <splitshare/report/per_class_section.h>
#include <splitshare/report/run_folder.h>
