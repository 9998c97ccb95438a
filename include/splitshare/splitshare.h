#pragma once

/// Everything splitshare offers, area by area (docs/architecture.md): include this, or the
/// header of one area (<splitshare/nn.h>, <splitshare/train.h>, ...).

#include <splitshare/util.h>
#include <splitshare/image.h>
#include <splitshare/data.h>
#include <splitshare/nn.h>
#include <splitshare/checkpoint.h>
#include <splitshare/distributed.h>
#include <splitshare/eval.h>
#include <splitshare/export.h>
#include <splitshare/run.h>
#include <splitshare/train.h>
#include <splitshare/explain.h>
#include <splitshare/report.h>
#include <splitshare/bench.h>
