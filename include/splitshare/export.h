#pragma once

/// splitshare's export area: TorchScript and ONNX export, and int8 quantization of checkpoints.

#include <splitshare/export/export.h>
#include <splitshare/export/quantize.h>
