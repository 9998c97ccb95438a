#pragma once

/// splitshare's checkpoint area: the checkpoint format and the import of torchvision weights.

#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/checkpoint/import.h>
