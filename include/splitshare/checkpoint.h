#pragma once

/// splitshare's checkpoint area: the checkpoint format, its int8 record and the import of torchvision weights.

#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/checkpoint/import.h>
#include <splitshare/checkpoint/quantization.h>
