#pragma once

// Encoders of BMP and PNM test files and the fixtures of every format variant, for
// test_formats.cpp (the only includer: the helpers sit in an anonymous namespace).

#include <gtest/gtest.h>
#include <splitshare/data/image_folder.h>
#include <splitshare/image/decode.h>
#include <torch/torch.h>
#include <algorithm>
#include <array>
#include <filesystem>
#include <map>
#include <random>

#include "image_writers.h"
#include "support.h"

namespace fs = std::filesystem;
namespace sd = splitshare::data;
namespace st = splitshare::testing;

namespace {

constexpr int kWidth = 13;  // odd sizes: BMP rows need padding, PBM rows a partial byte
constexpr int kHeight = 11;

void put16(std::string& s, uint32_t v) {
  s += static_cast<char>(v & 255);
  s += static_cast<char>((v >> 8) & 255);
}
void put32(std::string& s, uint32_t v) {
  put16(s, v & 0xFFFF);
  put16(s, v >> 16);
}

std::vector<uint32_t> random_values(size_t n, uint32_t bound, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint32_t> v(n);
  for (auto& x : v) x = static_cast<uint32_t>(rng() % bound);
  return v;
}

// Palette indices with runs (for RLE) and some noise.
std::vector<uint32_t> runny_indices(int w, int h, uint32_t colors, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint32_t> v(static_cast<size_t>(w * h));
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) v[y * w + x] = rng() % 3 == 0 ? rng() % colors : (x / 5 + y) % colors;
  }
  return v;
}

struct BmpLayout {
  uint32_t bits = 24;
  uint32_t compression = 0;  // 0 BI_RGB, 1 RLE8, 2 RLE4, 3 BI_BITFIELDS
  bool top_down = false;
  uint32_t header_size = 40;        // 12 (OS/2), 40 or 124
  std::array<uint32_t, 4> masks{};  // R, G, B, A
  std::vector<uint32_t> palette;    // 0xRRGGBB
};

std::string packed_row(const uint32_t* row, int w, uint32_t bits) {
  std::string out;
  if (bits < 8) {
    out.assign((w * bits + 7) / 8, '\0');
    for (int x = 0; x < w; ++x) out[x * bits / 8] |= static_cast<char>(row[x] << (8 - bits - x * bits % 8));
  } else {
    for (int x = 0; x < w; ++x) {
      for (uint32_t b = 0; b < bits / 8; ++b) out += static_cast<char>((row[x] >> (8 * b)) & 255);
    }
  }
  while (out.size() % 4) out += '\0';
  return out;
}

// RLE8 / RLE4 of one row: runs of >= 3, literal groups (5 pixels for RLE8, padded; 4 for
// RLE4: PIL reads odd RLE4 literals short), pairs of alternating nibbles, end of line.
std::string rle_row(const uint32_t* row, int w, bool rle4) {
  std::string out;
  const int literal = rle4 ? 4 : 5;
  for (int x = 0; x < w;) {
    int run = 1;
    while (x + run < w && run < 255 && row[x + run] == row[x]) ++run;
    if (run < 3 && w - x >= literal) {
      out += '\0';
      out += static_cast<char>(literal);
      for (int i = 0; i < literal; i += rle4 ? 2 : 1) {
        out += static_cast<char>(rle4 ? row[x + i] << 4 | row[x + i + 1] : row[x + i]);
      }
      if (!rle4) out += '\0';
      x += literal;
    } else if (rle4 && run < 3) {
      const int n = std::min(2, w - x);
      out += static_cast<char>(n);
      out += static_cast<char>(row[x] << 4 | (n > 1 ? row[x + 1] : 0));
      x += n;
    } else {
      out += static_cast<char>(run);
      out += static_cast<char>(rle4 ? row[x] << 4 | row[x] : row[x]);
      x += run;
    }
  }
  return out + std::string("\0\0", 2);
}

// One value per pixel, top row first: a palette index, a 16/32-bit word or 0xRRGGBB.
std::string encode_bmp(const std::vector<uint32_t>& values, int w, int h, const BmpLayout& layout) {
  const bool rle = layout.compression == 1 || layout.compression == 2;
  std::string pixels;
  for (int r = 0; r < h; ++r) {
    const uint32_t* row = values.data() + (layout.top_down ? r : h - 1 - r) * w;
    pixels += rle ? rle_row(row, w, layout.compression == 2) : packed_row(row, w, layout.bits);
  }
  if (rle) pixels += std::string("\0\1", 2);
  std::string info;
  put32(info, layout.header_size);
  if (layout.header_size == 12) {
    for (uint32_t v : {static_cast<uint32_t>(w), static_cast<uint32_t>(h), 1u, layout.bits}) put16(info, v);
  } else {
    put32(info, w);
    put32(info, static_cast<uint32_t>(layout.top_down ? -h : h));
    put16(info, 1);
    put16(info, layout.bits);
    for (uint32_t v : {layout.compression, static_cast<uint32_t>(pixels.size()), 2835u, 2835u,
                       static_cast<uint32_t>(layout.palette.size()), 0u}) {
      put32(info, v);
    }
    if (layout.compression == 3) {
      for (size_t c = 0; c < (layout.header_size > 40 ? 4u : 3u); ++c) put32(info, layout.masks[c]);
    }
    if (layout.header_size > 40) info.resize(layout.header_size, '\0');
  }
  for (uint32_t colour : layout.palette) {
    for (int shift : {0, 8, 16}) info += static_cast<char>((colour >> shift) & 255);
    if (layout.header_size != 12) info += '\0';
  }
  std::string file = "BM";
  put32(file, static_cast<uint32_t>(14 + info.size() + pixels.size()));
  put32(file, 0);
  put32(file, static_cast<uint32_t>(14 + info.size()));
  return file + info + pixels;
}

// PNM P1 ... P6; `samples` = width * height * bands values (bitmaps: 1 = black).
std::string encode_pnm(int kind, int w, int h, uint32_t maxval, const std::vector<uint32_t>& samples) {
  std::string out = "P" + std::to_string(kind) + "\n# written by test_image_formats\n" + std::to_string(w) + " " +
                    std::to_string(h) + "\n";
  if (kind != 1 && kind != 4) out += std::to_string(maxval) + "\n";
  const int bands = kind == 3 || kind == 6 ? 3 : 1;
  const size_t row = static_cast<size_t>(w * bands);
  for (int y = 0; y < h; ++y) {
    const uint32_t* s = samples.data() + y * row;
    if (kind == 1) {  // digits without separators on even rows
      for (size_t i = 0; i < row; ++i) out += (s[i] ? "1" : "0") + std::string(y % 2 ? " " : "");
      out += y == 3 ? " # a comment inside the pixels\n" : "\n";
    } else if (kind <= 3) {
      for (size_t i = 0; i < row; ++i) out += std::to_string(s[i]) + (i + 1 < row ? " " : "\n");
    } else if (kind == 4) {
      std::string bits((w + 7) / 8, '\0');
      for (int x = 0; x < w; ++x) bits[x / 8] |= static_cast<char>(s[x] << (7 - x % 8));
      out += bits;
    } else {
      for (size_t i = 0; i < row; ++i) {
        if (maxval > 255) out += static_cast<char>(s[i] >> 8);
        out += static_cast<char>(s[i] & 255);
      }
    }
  }
  return out;
}

struct Fixture {
  std::string name;
  std::string bytes;
  std::string reference;  // the file whose PIL decoding is expected ("" = this one)
  int tolerance = 0;      // max abs difference from PIL
};

std::vector<Fixture> bmp_fixtures() {
  const int n = kWidth * kHeight;
  std::vector<uint32_t> palette16 = random_values(16, 1 << 24, 3), palette256 = random_values(256, 1 << 24, 4);
  std::vector<uint32_t> grey(256);
  for (uint32_t i = 0; i < 256; ++i) grey[i] = i * 0x010101;
  auto bmp = [&](const std::vector<uint32_t>& values, const BmpLayout& layout) {
    return encode_bmp(values, kWidth, kHeight, layout);
  };
  BmpLayout v5_rgba{32, 3, false, 124, {0xFF0000, 0xFF00, 0xFF, 0xFF000000}, {}};
  return {
      {"1bit.bmp", bmp(random_values(n, 2, 1), {1, 0, false, 40, {}, {0x102030, 0xF0E0D0}})},
      {"1bit_white_black.bmp", bmp(random_values(n, 2, 2), {1, 0, true, 40, {}, {0, 0xFFFFFF}})},
      {"4bit.bmp", bmp(random_values(n, 16, 5), {4, 0, false, 40, {}, palette16})},
      {"4bit_top_down.bmp", bmp(random_values(n, 16, 6), {4, 0, true, 40, {}, palette16})},
      {"8bit.bmp", bmp(random_values(n, 256, 7), {8, 0, false, 40, {}, palette256})},
      {"8bit_grey.bmp", bmp(random_values(n, 256, 8), {8, 0, true, 40, {}, grey})},
      {"8bit_12_colours.bmp",
       bmp(random_values(n, 12, 9), {8, 0, false, 40, {}, {palette256.begin(), palette256.begin() + 12}})},
      {"8bit_os2.bmp", bmp(random_values(n, 256, 10), {8, 0, false, 12, {}, palette256})},
      {"16bit_555.bmp", bmp(random_values(n, 1 << 16, 11), {16, 0, false, 40, {}, {}})},
      {"16bit_565_fields.bmp", bmp(random_values(n, 1 << 16, 12), {16, 3, false, 40, {0xF800, 0x7E0, 0x1F, 0}, {}})},
      {"16bit_555_fields_top_down.bmp",
       bmp(random_values(n, 1 << 15, 13), {16, 3, true, 40, {0x7C00, 0x3E0, 0x1F, 0}, {}})},
      {"24bit.bmp", bmp(random_values(n, 1 << 24, 14), {24, 0, false, 40, {}, {}})},
      {"24bit_top_down.bmp", bmp(random_values(n, 1 << 24, 15), {24, 0, true, 40, {}, {}})},
      {"24bit_v5.bmp", bmp(random_values(n, 1 << 24, 16), {24, 0, false, 124, {}, {}})},
      {"32bit.bmp", bmp(random_values(n, UINT32_MAX, 17), {32, 0, false, 40, {}, {}})},
      {"32bit_fields.bmp", bmp(random_values(n, UINT32_MAX, 18), {32, 3, true, 40, {0xFF0000, 0xFF00, 0xFF, 0}, {}})},
      {"32bit_v5_bgra.bmp", bmp(random_values(n, UINT32_MAX, 19), v5_rgba)},
      {"32bit_v5_rgba.bmp",
       bmp(random_values(n, UINT32_MAX, 20), {32, 3, false, 124, {0xFF, 0xFF00, 0xFF0000, 0xFF000000}, {}})},
      {"rle8.bmp", bmp(runny_indices(kWidth, kHeight, 256, 21), {8, 1, false, 40, {}, palette256})},
      {"rle8_9_colours.bmp",
       bmp(runny_indices(kWidth, kHeight, 9, 22), {8, 1, false, 40, {}, {palette256.begin(), palette256.begin() + 9}})},
      {"rle4.bmp", bmp(runny_indices(kWidth, kHeight, 16, 23), {4, 2, false, 40, {}, palette16})},
  };
}

std::vector<Fixture> pnm_fixtures() {
  const int n = kWidth * kHeight;
  auto pnm = [&](int kind, uint32_t maxval, uint64_t seed) {
    const int bands = kind == 3 || kind == 6 ? 3 : 1;
    const uint32_t bound = kind == 1 || kind == 4 ? 2 : maxval + 1;
    return encode_pnm(kind, kWidth, kHeight, maxval, random_values(static_cast<size_t>(n * bands), bound, seed));
  };
  // PIL reads grey maps with maxval > 255 as 32-bit integers and clips them to 255 in
  // convert("L"); we scale them like its colour maps, so those grey maps are compared with
  // the same samples written as a colour map (R = G = B).
  auto grey_as_rgb = [&](uint32_t maxval, uint64_t seed, int kind) {
    std::vector<uint32_t> rgb;
    for (uint32_t v : random_values(static_cast<size_t>(n), maxval + 1, seed)) rgb.insert(rgb.end(), {v, v, v});
    return encode_pnm(kind, kWidth, kHeight, maxval, rgb);
  };
  return {
      {"p1.pbm", pnm(1, 1, 31)},
      {"p2.pgm", pnm(2, 255, 32)},
      {"p2_maxval_10.pgm", pnm(2, 10, 33)},
      {"p3.ppm", pnm(3, 255, 34)},
      {"p3_maxval_1000.ppm", pnm(3, 1000, 35)},
      {"p4.pbm", pnm(4, 1, 36)},
      {"p5.pgm", pnm(5, 255, 37)},
      {"p5_maxval_100.pgm", pnm(5, 100, 38)},
      {"p6.ppm", pnm(6, 255, 39)},
      {"p6_maxval_15.ppm", pnm(6, 15, 40)},
      {"p6_16bit.ppm", pnm(6, 65535, 41)},
      {"p6_maxval_1000.pnm", pnm(6, 1000, 42)},
      {"p5_16bit.pgm", pnm(5, 65535, 43), "p5_16bit_as_rgb.ppm"},
      {"p5_16bit_as_rgb.ppm", grey_as_rgb(65535, 43, 6)},
      {"p2_maxval_4000.pgm", pnm(2, 4000, 44), "p2_maxval_4000_as_rgb.ppm"},
      {"p2_maxval_4000_as_rgb.ppm", grey_as_rgb(4000, 44, 3)},
  };
}

// WebP files are written by PIL (libwebp's encoder) from a raw RGBA picture.
std::vector<Fixture> webp_fixtures(const st::TempDir& dir) {
  auto rgba =
      torch::cat({st::test_picture(3, kHeight * 3, kWidth * 3, 51), st::test_picture(1, kHeight * 3, kWidth * 3, 52)});
  st::write_file(dir.file("source.rgba"),
                 std::string(reinterpret_cast<const char*>(rgba.permute({1, 2, 0}).contiguous().data_ptr<uint8_t>()),
                             rgba.numel()));
  const std::string script =
      "import sys, numpy as np\n"
      "from PIL import Image\n"
      "d, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
      "im = Image.fromarray(np.fromfile(d + '/source.rgba', dtype=np.uint8).reshape(h, w, 4), 'RGBA')\n"
      "im.convert('RGB').save(d + '/lossless.webp', lossless=True)\n"
      "im.save(d + '/lossless_alpha.webp', lossless=True)\n"
      "im.convert('L').save(d + '/lossless_grey.webp', lossless=True)\n"
      "im.convert('RGB').save(d + '/lossy.webp', quality=80)\n"
      "im.save(d + '/lossy_alpha.webp', quality=60)\n";
  st::write_file(dir.file("make_webp.py"), script);
  std::string output;
  EXPECT_EQ(st::run_command(std::string(st::python()) + " " + dir.file("make_webp.py") + " " + dir.path().string() +
                                " " + std::to_string(kHeight * 3) + " " + std::to_string(kWidth * 3),
                            &output),
            0)
      << output;
  // Lossy: PIL's wheel bundles its own, newer libwebp, and decodes through WebPAnimDecoder
  // into RGBA; the VP8 reconstruction is exact but the YUV -> RGB upsampling may round
  // differently between libwebp versions, so a couple of levels are allowed there.
  std::vector<Fixture> files = {{"lossless.webp", "", "", 0},
                                {"lossless_alpha.webp", "", "", 0},
                                {"lossless_grey.webp", "", "", 0},
                                {"lossy.webp", "", "", 3},
                                {"lossy_alpha.webp", "", "", 3}};
  for (auto& f : files) f.bytes = st::read_file(dir.file(f.name));
  return files;
}

// PIL's convert("RGB") and convert("L") of each file, as [3, H, W] and [1, H, W].
std::map<std::string, std::pair<torch::Tensor, torch::Tensor>> pil_decode(const st::TempDir& dir,
                                                                          const std::vector<Fixture>& files) {
  std::string names;
  for (const auto& f : files) {
    st::write_file(dir.file(f.name), f.bytes);
    names += " " + f.name;
  }
  const std::string script =
      "import sys, numpy as np\n"
      "from PIL import Image\n"
      "d = sys.argv[1]\n"
      "for name in sys.argv[2:]:\n"
      "    im = Image.open(d + '/' + name)\n"
      "    np.asarray(im.convert('RGB'), dtype=np.uint8).transpose(2, 0, 1).tofile(d + '/' + name + '.rgb')\n"
      "    np.asarray(im.convert('L'), dtype=np.uint8).tofile(d + '/' + name + '.l')\n"
      "    print(name, im.size[0], im.size[1])\n";
  st::write_file(dir.file("pil_decode.py"), script);
  std::string output;
  EXPECT_EQ(
      st::run_command(std::string(st::python()) + " " + dir.file("pil_decode.py") + " " + dir.path().string() + names,
                      &output),
      0)
      << output;
  std::map<std::string, std::pair<torch::Tensor, torch::Tensor>> decoded;
  for (const auto& f : files) {
    const auto info = sd::read_image_info(dir.file(f.name));
    decoded[f.name] = {st::read_raw(dir.file(f.name + ".rgb"), torch::kUInt8, {3, info.height, info.width}),
                       st::read_raw(dir.file(f.name + ".l"), torch::kUInt8, {1, info.height, info.width})};
  }
  return decoded;
}

int64_t max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes()) return 1 << 20;
  return (a.to(torch::kInt32) - b.to(torch::kInt32)).abs().max().item<int>();
}

void expect_matches_pil(const st::TempDir& dir, const std::vector<Fixture>& files) {
  auto pil = pil_decode(dir, files);
  for (const auto& f : files) {
    const auto& [rgb, l] = pil.at(f.reference.empty() ? f.name : f.reference);
    EXPECT_LE(max_abs_diff(sd::decode_image(dir.file(f.name)), rgb), f.tolerance) << f.name << " (RGB)";
    EXPECT_LE(max_abs_diff(sd::decode_image(dir.file(f.name), sd::DecodeOptions().channels(1)), l), f.tolerance)
        << f.name << " (L)";
  }
}

// A crop equals the same rectangle of the full decode, in both channel counts.
void expect_crops_exact(const Fixture& f) {
  const auto* data = reinterpret_cast<const uint8_t*>(f.bytes.data());
  for (int64_t channels : {1, 3}) {
    auto options = sd::DecodeOptions().channels(channels);
    const auto full = sd::decode_image(data, f.bytes.size(), f.name, options);
    const int64_t h = full.size(1), w = full.size(2);
    for (auto rect : {sd::PixelRect{2, 3, 7, 5}, sd::PixelRect{0, 0, w, h}, sd::PixelRect{w - 1, h - 1, 1, 1},
                      sd::PixelRect{5, 1, 100, 100}}) {
      const auto crop = sd::decode_image(data, f.bytes.size(), f.name, options.crop(rect));
      const auto expected =
          full.slice(1, rect.y, std::min(h, rect.y + rect.height)).slice(2, rect.x, std::min(w, rect.x + rect.width));
      EXPECT_TRUE(torch::equal(crop, expected))
          << f.name << " channels " << channels << " crop " << rect.x << "," << rect.y;
    }
  }
}

// Every prefix of the file (in a buffer of exactly that size) is refused naming the file, or
// (RLE without its end-of-bitmap code, plain PNM cut inside its last number) decodes to the
// full image up to the last pixel.
void expect_prefixes_refused(const Fixture& f, bool every_cut_refused) {
  const auto full = sd::decode_image(reinterpret_cast<const uint8_t*>(f.bytes.data()), f.bytes.size(), f.name);
  sd::ImageDecoder decoder;
  for (size_t cut = 0; cut < f.bytes.size(); ++cut) {
    const std::vector<uint8_t> prefix(f.bytes.begin(), f.bytes.begin() + static_cast<std::ptrdiff_t>(cut));
    const std::string name = "cut-" + std::to_string(cut) + "-" + f.name;
    try {
      decoder.open(prefix.data(), prefix.size(), name);
      decoder.decode(sd::DecodeOptions().crop(sd::PixelRect{1, 1, 4, 4}));
      const auto out = sd::decode_image(prefix.data(), prefix.size(), name);
      EXPECT_FALSE(every_cut_refused) << name << " was accepted";
      // A plain file cut inside its last number still parses: all but the last pixel must match.
      const int64_t h = full.size(1), w = full.size(2);
      ASSERT_EQ(out.sizes(), full.sizes()) << name;
      EXPECT_TRUE(torch::equal(out.slice(1, 0, h - 1), full.slice(1, 0, h - 1)) &&
                  torch::equal(out.select(1, h - 1).slice(1, 0, w - 1), full.select(1, h - 1).slice(1, 0, w - 1)))
          << name << " decoded to something else";
    } catch (const c10::Error& e) {
      const std::string message = e.what_without_backtrace();
      EXPECT_NE(message.find(name), std::string::npos) << message;
    }
  }
}

bool is_rle_or_plain(const std::string& name) {
  return name.rfind("rle", 0) == 0 || name.rfind("p1", 0) == 0 || name.rfind("p2", 0) == 0 || name.rfind("p3", 0) == 0;
}

std::string with_u32(std::string bytes, size_t offset, uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[offset + i] = static_cast<char>((value >> (8 * i)) & 255);
  return bytes;
}

std::string refusal(const std::string& bytes, const sd::DecodeOptions& options = {}) {
  return st::expect_error(
      [&] { sd::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "bad.img", options); });
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace
