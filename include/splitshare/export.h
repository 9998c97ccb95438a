#pragma once

/// splitshare's export area: TorchScript and ONNX export.

#include <splitshare/export/export.h>
