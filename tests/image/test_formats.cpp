// BMP, PNM and WebP decoding: every variant written here byte by byte (BMP, PNM) or
// by PIL (WebP) and compared with PIL's own decoding, crops against the full decode, and
// truncated or corrupt files refused by name.
#include <gtest/gtest.h>
#include <splitshare/data/image_folder.h>
#include <splitshare/image/decode.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <map>
#include <random>

#include "image/format_fixtures.h"
#include "support.h"

using splitshare::testing::expect_error;

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
