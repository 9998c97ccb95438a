#pragma once

/// splitshare's util area: files, signals, progress bars, devices, runtime and build facts.

#include <splitshare/util/build_info.h>
#include <splitshare/util/cpu.h>
#include <splitshare/util/device.h>
#include <splitshare/util/files.h>
#include <splitshare/util/progress.h>
#include <splitshare/util/runtime.h>
#include <splitshare/util/signals.h>
