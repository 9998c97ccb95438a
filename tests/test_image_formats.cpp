// BMP, PNM and WebP decoding (issue #17): every variant written here byte by byte (BMP, PNM) or
// by PIL (WebP) and compared with PIL's own decoding, crops against the full decode, and
// truncated or corrupt files refused by name.
#include <gtest/gtest.h>
#include <splitshare/data/image_folder.h>
#include <splitshare/data/image_io.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <map>
#include <random>

#include "image_writers.h"
#include "support.h"

using splitshare::testing::expect_error;

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
  return expect_error(
      [&] { sd::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "bad.img", options); });
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST(ImageFormats, DetectsFormatsFromTheirFirstBytes) {
  auto detect = [](const std::string& s) {
    return sd::detect_image_format(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  EXPECT_EQ(detect(bmp_fixtures()[0].bytes), sd::ImageFormat::kBmp);
  for (const auto& f : pnm_fixtures()) EXPECT_EQ(detect(f.bytes), sd::ImageFormat::kPnm) << f.name;
  EXPECT_EQ(detect(std::string("RIFF\x10\0\0\0WEBPVP8L", 16)), sd::ImageFormat::kWebp);
  EXPECT_EQ(detect(std::string("RIFF\x10\0\0\0WAVEfmt ", 16)), sd::ImageFormat::kUnknown) << "a RIFF that is not WebP";
  EXPECT_EQ(detect("P7\n"), sd::ImageFormat::kUnknown);
  EXPECT_EQ(detect("Photo of a cat"), sd::ImageFormat::kUnknown) << "P without a digit and a space";
  EXPECT_EQ(detect("B"), sd::ImageFormat::kUnknown);
  EXPECT_TRUE(sd::can_decode(sd::ImageFormat::kBmp) && sd::can_decode(sd::ImageFormat::kPnm));
  EXPECT_FALSE(sd::can_decode(sd::ImageFormat::kUnknown));
}

TEST(ImageFormats, ImageExtensionsInAnyCase) {
  for (const char* path : {"a.jpg", "a.JPEG", "dir/b.Png", "c.bmp", "c.BMP", "d.ppm", "e.pgm", "f.PBM", "g.pnm",
                           "h.webp", "h.WebP", "x.y/z.jpg"}) {
    EXPECT_TRUE(sd::has_image_extension(path)) << path;
  }
  for (const char* path : {"a.txt", "a.jpg.txt", "webp", "dir.jpg/readme", ".jpg", "a.tif", "a.gif", "a"}) {
    EXPECT_FALSE(sd::has_image_extension(path)) << path;
  }
}

TEST(ImageFormats, HeadersGiveSizeAndStoredChannels) {
  st::TempDir dir;
  for (const auto& f : bmp_fixtures()) {
    st::write_file(dir.file(f.name), f.bytes);
    const auto info = sd::read_image_info(dir.file(f.name));
    EXPECT_EQ(info.format, sd::ImageFormat::kBmp);
    EXPECT_EQ(info.width, kWidth) << f.name;
    EXPECT_EQ(info.height, kHeight) << f.name;
    EXPECT_EQ(info.stored_channels, f.name.find("v5_") != std::string::npos && f.name.find("32bit") == 0 ? 4 : 3)
        << f.name;
  }
  for (const auto& f : pnm_fixtures()) {
    st::write_file(dir.file(f.name), f.bytes);
    const auto info = sd::read_image_info(dir.file(f.name));
    EXPECT_EQ(info.format, sd::ImageFormat::kPnm);
    EXPECT_EQ(info.width, kWidth) << f.name;
    EXPECT_EQ(info.height, kHeight) << f.name;
    EXPECT_EQ(info.stored_channels, f.name.find(".ppm") != std::string::npos || f.name.find("p6") == 0 ? 3 : 1)
        << f.name;
  }
}

// Without Python: layouts whose pixels follow directly from the bytes written.
TEST(ImageFormats, BmpAndPnmPixelsFollowTheirSamples) {
  const int n = kWidth * kHeight;
  const auto rgb = random_values(n, 1 << 24, 61);
  auto expected = torch::empty({3, kHeight, kWidth}, torch::kUInt8);
  for (int i = 0; i < n; ++i) {
    for (int c = 0; c < 3; ++c) expected[c][i / kWidth][i % kWidth] = static_cast<uint8_t>(rgb[i] >> (16 - 8 * c));
  }
  auto decode = [](const std::string& bytes, int64_t channels = 3) {
    return sd::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "t",
                            sd::DecodeOptions().channels(channels));
  };
  for (bool top_down : {false, true}) {
    EXPECT_TRUE(torch::equal(decode(encode_bmp(rgb, kWidth, kHeight, {24, 0, top_down, 40, {}, {}})), expected));
  }
  std::vector<uint32_t> palette = random_values(256, 1 << 24, 62);
  EXPECT_TRUE(
      torch::equal(decode(encode_bmp(std::vector<uint32_t>(n, 7), kWidth, kHeight, {8, 1, false, 40, {}, palette})),
                   torch::tensor({static_cast<int>(palette[7] >> 16), static_cast<int>((palette[7] >> 8) & 255),
                                  static_cast<int>(palette[7] & 255)},
                                 torch::kUInt8)
                       .view({3, 1, 1})
                       .expand({3, kHeight, kWidth})))
      << "RLE8 run";
  std::vector<uint32_t> samples;
  for (int i = 0; i < n; ++i) samples.insert(samples.end(), {rgb[i] >> 16, (rgb[i] >> 8) & 255, rgb[i] & 255});
  EXPECT_TRUE(torch::equal(decode(encode_pnm(6, kWidth, kHeight, 255, samples)), expected));
  EXPECT_TRUE(torch::equal(decode(encode_pnm(3, kWidth, kHeight, 255, samples)), expected));
  std::vector<uint32_t> wide(samples.size());
  std::transform(samples.begin(), samples.end(), wide.begin(), [](uint32_t v) { return v * 257; });
  EXPECT_TRUE(torch::equal(decode(encode_pnm(6, kWidth, kHeight, 65535, wide)), expected))
      << "v * 257 / 65535 * 255 = v";
  const auto grey = expected[1].unsqueeze(0);
  std::vector<uint32_t> grey_samples(grey.data_ptr<uint8_t>(), grey.data_ptr<uint8_t>() + n);
  EXPECT_TRUE(torch::equal(decode(encode_pnm(5, kWidth, kHeight, 255, grey_samples), 1), grey));
  EXPECT_TRUE(
      torch::equal(decode(encode_pnm(5, kWidth, kHeight, 255, grey_samples)), grey.expand({3, kHeight, kWidth})));
}

TEST(ImageFormats, RleDeltaAndEarlyEndLeaveIndexZero) {
  // 4x2 RLE8, bottom-up: row 0 = two pixels of 5, then a delta of (1, 1) to (3, 1), one pixel
  // of 7, end of bitmap. Every other pixel keeps palette entry 0.
  std::string pixels("\x02\x05\x00\x02\x01\x01\x01\x07\x00\x01", 10);
  std::string bytes =
      encode_bmp(std::vector<uint32_t>(8, 0), 4, 2, {8, 1, false, 40, {}, {0x010203, 0, 0, 0, 0, 0x50, 0, 0x70}});
  bytes = bytes.substr(0, bytes.size() - 10) + pixels;  // was two rows of (4, 0) + EOL, then EOB
  auto out = sd::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "delta.bmp",
                              sd::DecodeOptions().channels(1));
  auto b = [](int v) { return static_cast<uint8_t>(v); };
  const uint8_t zero = static_cast<uint8_t>((1 * 19595 + 2 * 38470 + 3 * 7471 + 0x8000) >> 16);
  const uint8_t five = static_cast<uint8_t>((0x50 * 7471 + 0x8000) >> 16);
  const uint8_t seven = static_cast<uint8_t>((0x70 * 7471 + 0x8000) >> 16);
  auto expected =
      torch::tensor({b(zero), b(zero), b(zero), b(seven), b(five), b(five), b(zero), b(zero)}, torch::kUInt8);
  EXPECT_TRUE(torch::equal(out.flatten(), expected)) << out;
}

TEST(ImageFormats, BmpVariantsMatchPil) {
  if (!st::have_python_pil()) GTEST_SKIP() << "no Python with PIL + numpy (scripts/setup)";
  st::TempDir dir;
  expect_matches_pil(dir, bmp_fixtures());
}

TEST(ImageFormats, PnmVariantsMatchPil) {
  if (!st::have_python_pil()) GTEST_SKIP() << "no Python with PIL + numpy (scripts/setup)";
  st::TempDir dir;
  expect_matches_pil(dir, pnm_fixtures());
}

TEST(ImageFormats, WebpVariantsMatchPil) {
  if (!st::have_python_pil()) GTEST_SKIP() << "no Python with PIL + numpy (scripts/setup)";
  st::TempDir dir;
  const auto files = webp_fixtures(dir);
  if (!sd::can_decode(sd::ImageFormat::kWebp)) {
    const auto message = expect_error([&] { sd::decode_image(dir.file("lossy.webp")); });
    EXPECT_TRUE(contains(message, "without WebP support") && contains(message, dir.file("lossy.webp"))) << message;
    GTEST_SKIP() << "built without libwebp: WebP files are refused by name";
  }
  EXPECT_EQ(sd::read_image_info(dir.file("lossless.webp")).stored_channels, 3);
  EXPECT_EQ(sd::read_image_info(dir.file("lossy_alpha.webp")).stored_channels, 4);
  expect_matches_pil(dir, files);
}

TEST(ImageFormats, CropsEqualTheFullDecode) {
  for (const auto& f : bmp_fixtures()) expect_crops_exact(f);
  for (const auto& f : pnm_fixtures()) expect_crops_exact(f);
  if (st::have_python_pil() && sd::can_decode(sd::ImageFormat::kWebp)) {
    st::TempDir dir;
    for (const auto& f : webp_fixtures(dir)) expect_crops_exact(f);
  }
}

TEST(ImageFormats, TruncatedFilesAreRefusedByName) {
  for (const auto& f : bmp_fixtures()) expect_prefixes_refused(f, !is_rle_or_plain(f.name));
  for (const auto& f : pnm_fixtures()) expect_prefixes_refused(f, !is_rle_or_plain(f.name));
  if (st::have_python_pil() && sd::can_decode(sd::ImageFormat::kWebp)) {
    st::TempDir dir;
    for (const auto& f : webp_fixtures(dir)) expect_prefixes_refused(f, true);
  }
}

TEST(ImageFormats, CorruptBmpHeadersAreRefusedByName) {
  const std::string good = bmp_fixtures()[11].bytes;  // 24bit.bmp
  const std::string rle = bmp_fixtures()[18].bytes;   // rle8.bmp
  auto check = [](const std::string& bytes, const std::string& part, const sd::DecodeOptions& options = {}) {
    const auto message = refusal(bytes, options);
    EXPECT_TRUE(contains(message, "bad.img") && contains(message, part)) << message;
  };
  std::string bits = good;
  bits[28] = 7;
  check(bits, "7 bits per pixel");
  check(with_u32(good, 30, 4), "BI_JPEG");
  check(with_u32(rle, 30, 2), "BI_RLE4");  // RLE4 needs 4 bits per pixel
  check(with_u32(good, 14, 99), "info header of 99 bytes");
  check(with_u32(good, 18, 0), "size 0x");
  check(with_u32(good, 18, 0x80000000u), "size -2147483648x");
  check(with_u32(with_u32(good, 18, 0x7FFFFFFF), 22, 0x7FFFFFFF), "decompression-bomb");
  check(with_u32(with_u32(good, 18, 0x7FFFFFFF), 22, 0x7FFFFFFF), "truncated",
        sd::DecodeOptions().max_pixels(INT64_MAX));
  check(with_u32(good, 10, 0xFFFFFFF0u), "truncated");  // pixel offset past the end
  check(with_u32(rle, 10, 0xFFFFFFF0u), "truncated");
  check(with_u32(bmp_fixtures()[4].bytes, 46, 0xFFFFFFFFu).substr(0, 60), "palette");  // 4 billion colours, cut short
  check(with_u32(bmp_fixtures()[9].bytes, 54, 0xF0F0), "not one run of bits");
  check(with_u32(bmp_fixtures()[9].bytes, 54, 0), "mask is 0");
  // Absurd but harmless: a colour count beyond 2^bits reads only the first 2^bits entries.
  auto many = with_u32(bmp_fixtures()[2].bytes, 46, 1000);
  EXPECT_NO_THROW(sd::decode_image(reinterpret_cast<const uint8_t*>(many.data()), many.size(), "many.bmp"));
}

TEST(ImageFormats, CorruptPnmAndWebpAreRefusedByName) {
  auto check = [](const std::string& bytes, const std::string& part) {
    const auto message = refusal(bytes);
    EXPECT_TRUE(contains(message, "bad.img") && contains(message, part)) << message;
  };
  check("P6\n13 11\n0\n" + std::string(13 * 11 * 3, 'x'), "maxval 0");
  check("P6\n13 11\n70000\n" + std::string(13 * 11 * 6, 'x'), "maxval 70000");
  check("P5\n12345678901 1\n255\n", "more than 10 digits");
  check("P5\n4000000000 1\n255\n", "size 4000000000x1");
  check("P5\n0 1\n255\n", "size 0x1");
  check("P5\n2 2\n255", "no whitespace after the header");
  check("P5\n2 2\nabc\n", "maxval at offset 7 is not a decimal number");
  check("P2\n2 1\n255\n1 256\n", "sample 256");
  check("P1\n2 1\n0 2\n", "not a 0 or 1 pixel");
  check("P3\n2 1\n255\n1 2 3 4 5\n", "truncated");
  check("P6\n10000 10000\n255\n", "truncated");
  check("P2\n10000 10000\n255\n1 2 3\n", "truncated");  // plain: refused before allocating 300 MB
  check("P5 # no newline before the comment end", "truncated");
  if (sd::can_decode(sd::ImageFormat::kWebp) && st::have_python_pil()) {
    st::TempDir dir;
    for (const auto& f : webp_fixtures(dir)) {
      check(with_u32(f.bytes, 4, 0xFFFFFFF0u), "WebP");  // RIFF size far past the end
      // Garbage in the bitstream: refused or decoded, never a crash or an out-of-bounds read.
      for (size_t at = 20; at < f.bytes.size(); at += 7) {
        std::string bad = f.bytes;
        bad[at] = static_cast<char>(bad[at] ^ 0x5A);
        try {
          sd::decode_image(reinterpret_cast<const uint8_t*>(bad.data()), bad.size(), "bad.img");
        } catch (const c10::Error& e) {
          EXPECT_TRUE(contains(e.what_without_backtrace(), "bad.img")) << e.what_without_backtrace();
        }
      }
    }
  }
}

// A folder of every format: listed, loaded and decoded like decode_image + the evaluation
// transform (the loader's cropped decode reads the same pixels).
TEST(ImageFormats, ImageFolderListsAndLoadsEveryFormat) {
  st::TempDir dir;
  auto write = [&](const fs::path& rel, const std::string& bytes) {
    fs::create_directories((dir.path() / rel).parent_path());
    st::write_file((dir.path() / rel).string(), bytes);
  };
  const auto bmps = bmp_fixtures();
  const auto pnms = pnm_fixtures();
  write("a/one.BMP", bmps[4].bytes);
  write("a/two.bmp", bmps[18].bytes);
  write("a/three.ppm", pnms[8].bytes);
  write("a/four.Pgm", pnms[6].bytes);
  write("b/five.pbm", pnms[5].bytes);
  write("b/six.pnm", pnms[11].bytes);
  write("b/seven.png", st::encode_png(st::test_picture(3, 20, 30)));
  write("b/eight.jpg", st::encode_jpeg(st::test_picture(3, 20, 30)));
  write("b/notes.txt", "not an image");
  int64_t expected_files = 8;
  const bool webp = st::have_python_pil();
  if (webp) {
    st::TempDir webp_dir;
    write("b/nine.WEBP", webp_fixtures(webp_dir)[3].bytes);
    ++expected_files;
  }
  const auto index = sd::list_image_folder(dir.path().string());
  EXPECT_EQ(index.size(), expected_files);
  EXPECT_EQ(index.ignored_files, 1);
  const auto options = sd::ImageFolderOptions().image_size(8).resize(10);
  sd::ImageFolderLoader loader(index, options, sd::LoaderOptions().batch_size(4).workers(0));
  loader.reset(0);
  int64_t seen = 0;
  while (auto batch = loader.next()) {
    for (int64_t i = 0; i < batch->indices.size(0); ++i, ++seen) {
      const auto& path = index.paths[batch->indices[i].item<int64_t>()];
      auto expected =
          sd::eval_transform(sd::decode_image(path), 10, 8, options.mean(), options.std(), sd::ResizeMode::kSquare);
      st::expect_close(batch->images[i], expected, 1e-4);
    }
  }
  const bool webp_refused = webp && !sd::can_decode(sd::ImageFormat::kWebp);
  EXPECT_EQ(seen, expected_files - (webp_refused ? 1 : 0));
  EXPECT_EQ(loader.skipped(), webp_refused ? 1 : 0);
}
