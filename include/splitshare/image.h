#pragma once

/// splitshare's image area: image format detection and decoding (JPEG, PNG, BMP, PNM, WebP) and PNG and JPEG encoding.

#include <splitshare/image/decode.h>
#include <splitshare/image/jpeg.h>
#include <splitshare/image/png.h>
