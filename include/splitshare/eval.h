#pragma once

/// splitshare's eval area: metrics, per-class figures and prediction.

#include <splitshare/eval/metrics.h>
#include <splitshare/eval/mistakes.h>
#include <splitshare/eval/per_class.h>
#include <splitshare/eval/predict.h>
