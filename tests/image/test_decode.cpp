#include <splitshare/image/decode.h>
#include <splitshare/data/transforms.h>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "image_writers.h"
#include "support.h"
#include "data/resample.h"

using splitshare::testing::expect_error;

namespace sd = splitshare::data;
namespace st = splitshare::testing;

namespace {

const uint8_t* bytes_of(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

torch::Tensor decode(const std::string& bytes, const sd::DecodeOptions& options = {}) {
  return sd::decode_image(bytes_of(bytes), bytes.size(), "test.img", options);
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kInt32) - b.to(torch::kInt32)).abs().max().item<int>();
}

double mean_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat32) - b.to(torch::kFloat32)).abs().mean().item<float>();
}

// PIL's luma: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16.
torch::Tensor pil_luma(const torch::Tensor& rgb) {
  auto v = rgb.to(torch::kInt64);
  return ((v[0] * 19595 + v[1] * 38470 + v[2] * 7471 + 0x8000) / 65536).to(torch::kUInt8).unsqueeze(0);
}


}  // namespace

TEST(ImageIo, DetectsFormatFromContentNotName) {
  auto picture = st::test_picture(3, 8, 8);
  std::string jpeg = st::encode_jpeg(picture);
  std::string png = st::encode_png(picture);
  EXPECT_EQ(sd::detect_image_format(bytes_of(jpeg), jpeg.size()), sd::ImageFormat::kJpeg);
  EXPECT_EQ(sd::detect_image_format(bytes_of(png), png.size()), sd::ImageFormat::kPng);
  std::string text = "hello, not an image";
  EXPECT_EQ(sd::detect_image_format(bytes_of(text), text.size()), sd::ImageFormat::kUnknown);
  EXPECT_EQ(sd::detect_image_format(bytes_of(jpeg), 2), sd::ImageFormat::kUnknown);
}

TEST(ImageIo, ReadsInfoWithoutDecoding) {
  st::TempDir dir;
  st::write_file(dir.file("a.jpg"), st::encode_jpeg(st::test_picture(3, 37, 53)));
  st::write_file(dir.file("b.png"), st::encode_png(st::test_picture(2, 21, 13)));
  st::write_file(dir.file("c.jpg"), st::encode_jpeg(st::rgb_to_inverted_cmyk(st::test_picture(3, 16, 24)),
                                                     st::JpegWriteOptions{90, false, 1, 1, true}));
  auto a = sd::read_image_info(dir.file("a.jpg"));
  EXPECT_EQ(a.format, sd::ImageFormat::kJpeg);
  EXPECT_EQ(a.width, 53);
  EXPECT_EQ(a.height, 37);
  EXPECT_EQ(a.stored_channels, 3);
  auto b = sd::read_image_info(dir.file("b.png"));
  EXPECT_EQ(b.format, sd::ImageFormat::kPng);
  EXPECT_EQ(b.width, 13);
  EXPECT_EQ(b.height, 21);
  EXPECT_EQ(b.stored_channels, 2);
  EXPECT_EQ(sd::read_image_info(dir.file("c.jpg")).stored_channels, 4);
}

TEST(ImageIo, PngVariantsDecodeExactly) {
  auto rgb = st::test_picture(3, 19, 23);
  auto grey = st::test_picture(1, 19, 23, 5);
  auto alpha = st::test_picture(1, 19, 23, 9);

  EXPECT_TRUE(torch::equal(decode(st::encode_png(rgb)), rgb));
  EXPECT_TRUE(torch::equal(decode(st::encode_png(rgb, {8, true})), rgb)) << "interlaced";
  EXPECT_TRUE(torch::equal(decode(st::encode_png(rgb, {16, false})), rgb)) << "16-bit keeps the high byte";
  EXPECT_TRUE(torch::equal(decode(st::encode_png(torch::cat({rgb, alpha}))), rgb)) << "RGBA drops alpha";
  EXPECT_TRUE(torch::equal(decode(st::encode_png(grey)), grey.expand({3, 19, 23}))) << "grey -> RGB";
  EXPECT_TRUE(torch::equal(decode(st::encode_png(torch::cat({grey, alpha}))), grey.expand({3, 19, 23})));
  EXPECT_TRUE(torch::equal(decode(st::encode_png(grey, {16, true})), grey.expand({3, 19, 23})));

  auto luma = sd::DecodeOptions().channels(1);
  EXPECT_TRUE(torch::equal(decode(st::encode_png(grey), luma), grey));
  EXPECT_TRUE(torch::equal(decode(st::encode_png(rgb), luma), pil_luma(rgb))) << "RGB -> L with PIL's weights";
  EXPECT_TRUE(torch::equal(decode(st::encode_png(torch::cat({rgb, alpha})), luma), pil_luma(rgb)));

  std::vector<png_color> palette = {{255, 0, 0}, {0, 128, 0}, {10, 20, 250}, {77, 77, 77}};
  auto indices = torch::arange(19 * 23, torch::kInt64).remainder(4).to(torch::kUInt8).view({19, 23});
  auto lut = torch::tensor({255, 0, 10, 77, 0, 128, 20, 77, 0, 0, 250, 77}, torch::kUInt8).view({3, 4});
  auto expected = lut.index_select(1, indices.flatten().to(torch::kInt64)).view({3, 19, 23});
  EXPECT_TRUE(torch::equal(decode(st::encode_palette_png(indices, palette)), expected));
  EXPECT_TRUE(torch::equal(decode(st::encode_palette_png(indices, palette, {0, 128})), expected))
      << "palette transparency is dropped like PIL's convert(\"RGB\")";
}

TEST(ImageIo, PngCropIsExact) {
  auto rgb = st::test_picture(3, 40, 50);
  for (bool interlaced : {false, true}) {
    auto out = decode(st::encode_png(rgb, {8, interlaced}), sd::DecodeOptions().crop(sd::PixelRect{7, 11, 20, 25}));
    EXPECT_TRUE(torch::equal(out, rgb.slice(1, 11, 36).slice(2, 7, 27))) << "interlaced=" << interlaced;
  }
  // A crop reaching past the image is clipped to it.
  auto clipped = decode(st::encode_png(rgb), sd::DecodeOptions().crop(sd::PixelRect{40, 30, 100, 100}));
  EXPECT_TRUE(torch::equal(clipped, rgb.slice(1, 30, 40).slice(2, 40, 50)));
}

TEST(ImageIo, JpegDecodesCloseToTheEncodedPicture) {
  auto rgb = st::test_picture(3, 64, 80);
  auto out = decode(st::encode_jpeg(rgb, {95}));
  ASSERT_EQ(out.sizes(), rgb.sizes());
  EXPECT_LT(mean_abs_diff(out, rgb), 4.0);

  auto grey = st::test_picture(1, 64, 80);
  auto grey_jpeg = st::encode_jpeg(grey, {95});
  auto grey3 = decode(grey_jpeg);
  ASSERT_EQ(grey3.sizes(), (std::vector<int64_t>{3, 64, 80}));
  EXPECT_TRUE(torch::equal(grey3[0], grey3[1]) && torch::equal(grey3[0], grey3[2])) << "grey -> RGB replicates";
  EXPECT_TRUE(torch::equal(decode(grey_jpeg, sd::DecodeOptions().channels(1))[0], grey3[0]));
  EXPECT_LT(mean_abs_diff(grey3[0], grey[0]), 3.0);

  // Colour JPEG -> 1 channel is the decoded luma (Y), within rounding of PIL's L of the RGB decode.
  auto rgb_jpeg = st::encode_jpeg(rgb, {95});
  EXPECT_LE(max_abs_diff(decode(rgb_jpeg, sd::DecodeOptions().channels(1)), pil_luma(decode(rgb_jpeg))), 2);
}

TEST(ImageIo, CmykJpegComesOutAsRgb) {
  auto rgb = st::test_picture(3, 48, 64);
  auto cmyk = st::encode_jpeg(st::rgb_to_inverted_cmyk(rgb), {95, false, 1, 1, true});
  auto out = decode(cmyk);
  ASSERT_EQ(out.sizes(), rgb.sizes());
  EXPECT_LT(mean_abs_diff(out, rgb), 4.0);
  auto luma = decode(cmyk, sd::DecodeOptions().channels(1));
  EXPECT_TRUE(torch::equal(luma, pil_luma(out)));
}

// libjpeg-turbo's cropped decoding (jpeg_crop_scanline + jpeg_skip_scanlines) must give
// the same pixels as a full decode cut afterwards. Tolerance: exact, for baseline and
// progressive files and 4:2:0, 4:2:2, 4:4:4 and grey.
TEST(ImageIo, CroppedJpegDecodeMatchesFullDecode) {
  auto rgb = st::test_picture(3, 203, 317);
  std::vector<st::JpegWriteOptions> variants = {{90, false, 2, 2}, {90, true, 2, 2}, {90, false, 2, 1},
                                                {90, false, 1, 1}};
  std::vector<sd::PixelRect> crops = {{0, 0, 317, 203}, {1, 1, 100, 100}, {37, 59, 131, 77},
                                      {200, 150, 117, 53}, {16, 16, 32, 32}, {300, 0, 17, 203}};
  for (size_t v = 0; v < variants.size() + 1; ++v) {
    const bool grey = v == variants.size();
    auto jpeg = grey ? st::encode_jpeg(st::test_picture(1, 203, 317)) : st::encode_jpeg(rgb, variants[v]);
    auto full = decode(jpeg);
    for (const auto& crop : crops) {
      auto out = decode(jpeg, sd::DecodeOptions().crop(crop));
      auto expected = full.slice(1, crop.y, crop.y + crop.height).slice(2, crop.x, crop.x + crop.width);
      ASSERT_EQ(out.sizes(), expected.sizes());
      EXPECT_EQ(max_abs_diff(out, expected), 0)
          << "variant " << v << " crop " << crop.x << "," << crop.y << " " << crop.width << "x" << crop.height;
    }
  }
}

// DCT-domain scaling vs decoding at full size and shrinking with the antialiased
// bilinear resize: different filters, so only close. Stated tolerance: mean absolute
// difference <= 2 levels (of 255) on this picture.
TEST(ImageIo, ScaledJpegDecodeIsCloseToResizedFullDecode) {
  auto rgb = st::test_picture(3, 240, 320);
  auto jpeg = st::encode_jpeg(rgb, {92});
  auto full = decode(jpeg);
  for (double scale : {0.5, 0.25, 0.125}) {
    auto out = decode(jpeg, sd::DecodeOptions().min_scale(scale));
    const int64_t h = static_cast<int64_t>(240 * scale);
    const int64_t w = static_cast<int64_t>(320 * scale);
    ASSERT_EQ(out.sizes(), (std::vector<int64_t>{3, h, w})) << "scale " << scale;
    sd::ResampleSpec spec;
    spec.x = sd::ResampleAxis{0, 320, w, 0, w};
    spec.y = sd::ResampleAxis{0, 240, h, 0, h};
    auto resized = sd::resample(full, spec).round().clamp(0, 255).to(torch::kUInt8);
    EXPECT_LE(mean_abs_diff(out, resized), 2.0) << "scale " << scale;
  }
  // A factor between the SIMD ones is rounded up to the next allowed one: 0.3 -> 1/2.
  EXPECT_EQ(decode(jpeg, sd::DecodeOptions().min_scale(0.3)).size(2), 160);
  EXPECT_EQ(decode(jpeg, sd::DecodeOptions().min_scale(0.9)).size(2), 320);
}

// Cropping and scaling together: the crop's footprint in the scaled image, the same
// pixels as a scaled full decode (exact).
TEST(ImageIo, CroppedAndScaledJpegDecodeMatchesScaledFullDecode) {
  auto jpeg = st::encode_jpeg(st::test_picture(3, 480, 640), {90});
  auto options = sd::DecodeOptions().min_scale(0.5);
  auto full = decode(jpeg, options);
  sd::PixelRect crop{101, 67, 300, 211};
  auto out = decode(jpeg, options.crop(crop));
  auto expected = full.slice(1, 33, 139).slice(2, 50, 201);  // [floor(v/2), ceil((v+len)/2))
  ASSERT_EQ(out.sizes(), expected.sizes());
  EXPECT_EQ(max_abs_diff(out, expected), 0);
}

TEST(ImageIo, DecoderReportsRegionGeometry) {
  auto jpeg = st::encode_jpeg(st::test_picture(3, 100, 200), {90});
  sd::ImageDecoder decoder;
  auto info = decoder.open(bytes_of(jpeg), jpeg.size(), "geometry.jpg");
  EXPECT_EQ(info.width, 200);
  const auto& region = decoder.decode(sd::DecodeOptions().crop(sd::PixelRect{50, 30, 60, 40}));
  // 4:2:0 iMCUs are 16 pixels wide: the region starts left of x = 50 (2 columns of
  // margin, then aligned), at y = 30.
  EXPECT_LE(region.x, 48);
  EXPECT_EQ(region.x % 16, 0);
  EXPECT_GE(region.x + region.width, 110);
  EXPECT_EQ(region.y, 30);
  EXPECT_EQ(region.height, 40);
  EXPECT_EQ(region.channels, 3);
  EXPECT_EQ(region.row_stride, region.width * 3);
  EXPECT_EQ(region.image_width, 200);
  EXPECT_EQ(region.image_height, 100);
  EXPECT_DOUBLE_EQ(region.scale, 1.0);
  // The decoder is reusable, also after an error.
  std::string text = "not an image";
  EXPECT_THROW(decoder.open(bytes_of(text), text.size(), "bad.jpg"), c10::Error);
  auto png = st::encode_png(st::test_picture(3, 10, 12));
  EXPECT_EQ(decoder.open(bytes_of(png), png.size(), "ok.png").width, 12);
  EXPECT_EQ(decoder.decode({}).width, 12);
}

TEST(ImageIo, BadDataIsAnErrorNamingTheFile) {
  auto picture = st::test_picture(3, 120, 160);
  std::string jpeg = st::encode_jpeg(picture);
  std::string png = st::encode_png(picture);
  std::string text = "GIF89a, or anything else";

  auto message = expect_error([] { sd::decode_image(reinterpret_cast<const uint8_t*>(""), 0, "zero.jpg"); });
  EXPECT_NE(message.find("zero.jpg"), std::string::npos) << message;
  EXPECT_NE(message.find("empty"), std::string::npos) << message;

  message = expect_error([&] { decode(text); });
  EXPECT_NE(message.find("neither a JPEG nor a PNG"), std::string::npos) << message;

  // Truncated: a full decode, and a crop of the top rows that never reads the missing part.
  std::string cut = jpeg.substr(0, jpeg.size() * 6 / 10);
  message = expect_error([&] { decode(cut); });
  EXPECT_NE(message.find("test.img"), std::string::npos) << message;
  EXPECT_NE(message.find("Premature end"), std::string::npos) << message;
  message = expect_error([&] { decode(cut, sd::DecodeOptions().crop(sd::PixelRect{0, 0, 32, 16})); });
  EXPECT_NE(message.find("Premature end"), std::string::npos) << message;
  // Truncated inside the header.
  message = expect_error([&] { decode(jpeg.substr(0, 40)); });
  EXPECT_NE(message.find("cannot read JPEG"), std::string::npos) << message;
  // A complete file cropped to its top rows is fine.
  EXPECT_NO_THROW(decode(jpeg, sd::DecodeOptions().crop(sd::PixelRect{0, 0, 32, 16})));

  message = expect_error([&] { decode(png.substr(0, png.size() / 2)); });
  EXPECT_NE(message.find("cannot decode PNG test.img"), std::string::npos) << message;
  message = expect_error([&] { decode(png.substr(0, 20)); });
  EXPECT_NE(message.find("cannot read PNG test.img"), std::string::npos) << message;
  std::string corrupt = png;
  corrupt[40] ^= 0x55;  // inside IDAT: CRC mismatch or bad deflate data
  EXPECT_THROW(decode(corrupt), c10::Error);

  message = expect_error([&] { decode(jpeg, sd::DecodeOptions().max_pixels(160 * 120 - 1)); });
  EXPECT_NE(message.find("160x120 = 19200 pixels"), std::string::npos) << message;
  EXPECT_NO_THROW(decode(jpeg, sd::DecodeOptions().max_pixels(160 * 120)));
  message = expect_error([&] { decode(png, sd::DecodeOptions().crop(sd::PixelRect{500, 0, 10, 10})); });
  EXPECT_NE(message.find("does not overlap"), std::string::npos) << message;

  message = expect_error([] { sd::decode_image("/nonexistent/splitshare/x.jpg"); });
  EXPECT_NE(message.find("/nonexistent/splitshare/x.jpg"), std::string::npos) << message;
}

// Decoding parity with PIL (the Pillow wheel of the project's Python bundles libjpeg-turbo, used
// with the same defaults: islow IDCT, fancy upsampling). Tolerance: exact for RGB, grey, CMYK and
// palette files; <= 3 levels for colour JPEG -> 1 channel (we take the decoded Y,
// PIL computes L from the decoded RGB, which carries the chroma quantisation error).
TEST(ImageIo, DecodingMatchesPil) {
  if (!st::have_python_pil()) GTEST_SKIP() << "no Python with PIL + numpy (scripts/setup)";
  st::TempDir dir;
  auto rgb = st::test_picture(3, 75, 101);
  std::vector<std::pair<std::string, std::string>> files = {
      {"q90_420.jpg", st::encode_jpeg(rgb, {90})},
      {"q75_422.jpg", st::encode_jpeg(rgb, {75, false, 2, 1})},
      {"progressive.jpg", st::encode_jpeg(rgb, {90, true})},
      {"grey.jpg", st::encode_jpeg(st::test_picture(1, 75, 101))},
      {"cmyk.jpg", st::encode_jpeg(st::rgb_to_inverted_cmyk(rgb), {90, false, 1, 1, true})},
      {"rgba.png", st::encode_png(torch::cat({rgb, st::test_picture(1, 75, 101, 3)}))},
      {"palette.png", st::encode_palette_png(torch::arange(75 * 101, torch::kInt64).remainder(3).to(torch::kUInt8)
                                                 .view({75, 101}),
                                             {{1, 2, 3}, {200, 100, 50}, {9, 99, 199}}, {255, 0})},
  };
  std::string names;
  for (auto& [name, bytes] : files) {
    st::write_file(dir.file(name), bytes);
    names += " " + name;
  }
  std::string script =
      "import sys, numpy as np\n"
      "from PIL import Image\n"
      "d = sys.argv[1]\n"
      "for name in sys.argv[2:]:\n"
      "    im = Image.open(d + '/' + name)\n"
      "    np.asarray(im.convert('RGB'), dtype=np.uint8).transpose(2, 0, 1).tofile(d + '/' + name + '.rgb')\n"
      "    np.asarray(im.convert('L'), dtype=np.uint8).tofile(d + '/' + name + '.l')\n";
  st::write_file(dir.file("pil_decode.py"), script);
  std::string output;
  ASSERT_EQ(st::run_command(std::string(st::python()) + " " + dir.file("pil_decode.py") + " " + dir.path().string() +
                                names,
                            &output),
            0)
      << output;
  for (auto& [name, bytes] : files) {
    auto pil_rgb = st::read_raw(dir.file(name + ".rgb"), torch::kUInt8, {3, 75, 101});
    auto pil_l = st::read_raw(dir.file(name + ".l"), torch::kUInt8, {1, 75, 101});
    EXPECT_EQ(max_abs_diff(sd::decode_image(dir.file(name)), pil_rgb), 0) << name;
    const bool colour_jpeg = name.find(".jpg") != std::string::npos && name != "grey.jpg" && name != "cmyk.jpg";
    EXPECT_LE(max_abs_diff(sd::decode_image(dir.file(name), sd::DecodeOptions().channels(1)), pil_l),
              colour_jpeg ? 3 : 0)
        << name;
  }
}
