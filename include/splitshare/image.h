#pragma once

/// splitshare's image area: image format detection and decoding (JPEG, PNG, BMP, PNM, WebP) and PNG encoding.

#include <splitshare/image/decode.h>
#include <splitshare/image/png.h>
