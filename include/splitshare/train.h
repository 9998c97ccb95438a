#pragma once

/// splitshare's train area: fit, optimizers, schedules, EMA, mixing, AMP, compare and head selection.

#include <splitshare/train/amp.h>
#include <splitshare/train/compare.h>
#include <splitshare/train/ema.h>
#include <splitshare/train/fit.h>
#include <splitshare/train/fused_optimizers.h>
#include <splitshare/train/mix.h>
#include <splitshare/train/optimizer.h>
#include <splitshare/train/precision_probe.h>
#include <splitshare/train/schedule.h>
#include <splitshare/train/select.h>
