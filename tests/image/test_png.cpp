// PNG writing, read back through our decoder.
#include <splitshare/image/decode.h>
#include <splitshare/image/png.h>

#include "support.h"

namespace sd = splitshare::data;
using splitshare::testing::TempDir;

TEST(Png, RoundTripsThroughTheDecoder) {
  torch::manual_seed(3);
  for (int64_t channels : {1, 3}) {
    const auto image = torch::randint(0, 256, {channels, 9, 13}, torch::kUInt8);
    const auto bytes = sd::encode_png(image);
    ASSERT_GT(bytes.size(), 8u);
    const auto decoded = splitshare::data::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                                        "roundtrip.png",
                                                        splitshare::data::DecodeOptions().channels(channels));
    EXPECT_TRUE(torch::equal(decoded, image)) << channels << " channels";
  }
  TempDir dir;
  sd::write_png(dir.file("a.png"), torch::zeros({3, 4, 5}, torch::kUInt8));
  EXPECT_EQ(splitshare::data::read_image_info(dir.file("a.png")).width, 5);
  EXPECT_THROW(sd::write_png(dir.file("missing/a.png"), torch::zeros({3, 4, 5}, torch::kUInt8)), c10::Error);
  EXPECT_THROW(sd::encode_png(torch::zeros({2, 4, 5}, torch::kUInt8)), c10::Error);
}
