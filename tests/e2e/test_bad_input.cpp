// Bad input, reader by reader and through the command line: every malformed file or
// value is refused with a message naming the file (or flag) and the problem, the CLI
// exits with status 1 (not a signal), and no output file is left behind.
#include <splitshare/data/cifar.h>
#include <splitshare/data/idx.h>
#include <splitshare/data/image_folder.h>
#include <splitshare/image/decode.h>
#include <splitshare/checkpoint/checkpoint.h>

#include "cli_support.h"
#include "data_files.h"
#include "image_writers.h"
#include "support.h"

#include <zlib.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace sd = splitshare::data;
namespace sn = splitshare::nn;
namespace st = splitshare::testing;
namespace tr = splitshare::train;

using st::contains;
using st::expect_cli_refusal;
using st::expect_error;
using st::run_cli;
using st::tiny_checkpoint;
using st::tiny_metadata;
using st::write_tiny_mnist;


/// One malformed file: its name, its bytes, and a phrase the refusal must contain.
struct BadFile {
  std::string name;
  std::string bytes;
  std::string problem;
};

/// Writes each case to `dir`, runs `read` on it and checks the message names the file and the problem.
void expect_refusals(const st::TempDir& dir, const std::vector<BadFile>& cases,
                     const std::function<void(const std::string&)>& read) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto path = dir.file(c.name);
    st::write_file(path, c.bytes);
    const auto message = expect_error([&] { read(path); });
    EXPECT_TRUE(contains(message, path)) << message;
    EXPECT_TRUE(contains(message, c.problem)) << message;
  }
}

/// A PNG chunk: length, type, data, CRC.
std::string png_chunk(const std::string& type, const std::string& data) {
  const std::string body = type + data;
  const auto crc = crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()));
  return st::be32(static_cast<uint32_t>(data.size())) + body + st::be32(static_cast<uint32_t>(crc));
}

/// A PNG that declares width x height 8-bit grey pixels but holds only its header.
std::string png_header_only(uint32_t width, uint32_t height) {
  const std::string ihdr = st::be32(width) + st::be32(height) + std::string("\x08\x00\x00\x00\x00", 5);
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", "") +
         png_chunk("IEND", "");
}

std::string gzip_bytes(const st::TempDir& dir, const std::string& bytes) {
  const auto path = dir.file("scratch.gz");
  st::write_gzip(path, bytes);
  return st::read_file(path);
}

}  // namespace

TEST(BadInput, IdxFilesAreRefusedByName) {
  st::TempDir dir;
  const auto images = st::idx_images_bytes(2, 3, 3);
  // 1 image of 1x1, then a megabyte of zeros: compresses to ~1 KB (a small decompression bomb).
  const auto bomb = gzip_bytes(dir, st::idx_images_bytes(1, 1, 1) + std::string(1 << 20, '\0'));
  expect_refusals(dir,
                  {{"empty", "", "the header needs 16 bytes, found 0"},
                   {"short-header", images.substr(0, 10), "the header needs 16 bytes"},
                   {"labels-as-images", st::idx_labels_bytes({1, 2, 3, 4, 5, 6, 7, 8}), "wrong magic number"},
                   {"zero-count", st::idx_images_bytes(0, 3, 3), "the image count is 0"},
                   {"huge-side", st::be32(0x803) + st::be32(1) + st::be32(100000) + st::be32(2), "the row count"},
                   {"truncated", images.substr(0, images.size() - 1), "is truncated: expected 34 bytes"},
                   {"trailing", images + "xyz", "3 unexpected trailing bytes"},
                   {"gz-truncated", gzip_bytes(dir, images).substr(0, 20), "truncated"},
                   {"gz-corrupt", gzip_bytes(dir, images).substr(0, 10) + std::string(30, '\x55'), "gzip"},
                   {"gz-bomb", bomb, "unexpected trailing bytes"}},
                  [](const std::string& path) { sd::read_idx_images(path); });
  expect_refusals(dir,
                  {{"labels-empty", "", "the header needs 8 bytes"},
                   {"labels-truncated", st::idx_labels_bytes({1, 2, 3}).substr(0, 10), "truncated"}},
                  [](const std::string& path) { sd::read_idx_labels(path); });

  // A header that declares more than the caller allows is refused before any allocation.
  const auto declared = st::be32(0x803) + st::be32(1u << 30) + st::be32(16384) + st::be32(16384);
  const auto message = expect_error([&] { sd::parse_idx_images(declared, "big.idx", uint64_t{1} << 20); });
  EXPECT_TRUE(contains(message, "big.idx declares")) << message;
}

TEST(BadInput, CifarFilesAreRefusedByName) {
  st::TempDir dir;
  const auto test_batch = dir.file("test_batch.bin");
  auto read = [&](const std::string&) { sd::read_cifar10(dir.path().string(), sd::Split::kTest); };
  // Each case is the test batch itself, so it lands where read_cifar10 looks.
  for (const auto& c : std::vector<BadFile>{{"test_batch.bin", "", "not a positive multiple of the 3073-byte record"},
                                            {"test_batch.bin", st::cifar_bytes({1}, 1) + "x", "3074 bytes"},
                                            {"test_batch.bin", st::cifar_bytes({3, 10}, 1), "label 10 of record 1"}}) {
    expect_refusals(dir, {c}, read);
  }
  st::write_file(test_batch, st::cifar_bytes({1, 2}, 1));
  st::write_file(dir.file("batches.meta.txt"), "one\ntwo\n");
  auto message = expect_error([&] { sd::read_cifar10(dir.path().string(), sd::Split::kTest); });
  EXPECT_TRUE(contains(message, "batches.meta.txt lists 2 names, expected 10")) << message;

  message = expect_error([&] { sd::read_cifar10(dir.file("missing"), sd::Split::kTrain); });
  EXPECT_TRUE(contains(message, dir.file("missing"))) << message;
}

TEST(BadInput, ImagesAreRefusedByName) {
  st::TempDir dir;
  const auto jpeg = st::encode_jpeg(st::test_picture(3, 64, 64));
  const auto png = st::encode_png(st::test_picture(3, 16, 16));
  // 60000 x 60000 pixels declared in a 57-byte file: the decompression-bomb guard refuses it.
  const auto huge_png = png_header_only(60000, 60000);
  std::string bad_crc = png;
  bad_crc[29] ^= 0x01;  // inside the IHDR chunk: its CRC no longer matches
  expect_refusals(dir,
                  {{"empty.jpg", "", "is empty (0 bytes)"},
                   {"text.png", "just some text", "neither a JPEG nor a PNG"},
                   {"truncated.jpg", jpeg.substr(0, jpeg.size() / 2), "Premature end of JPEG file"},
                   {"header-only.jpg", jpeg.substr(0, 4), "cannot read JPEG"},
                   {"truncated.png", png.substr(0, png.size() - 20), "cannot decode PNG"},
                   {"signature-only.png", png.substr(0, 8), "cannot read PNG"},
                   {"bad-crc.png", bad_crc, "cannot read PNG"},
                   {"huge.png", huge_png, "decompression-bomb guard"}},
                  [](const std::string& path) { sd::decode_image(path); });
  const auto message = expect_error([&] { sd::decode_image(dir.file("nope.png")); });
  EXPECT_TRUE(contains(message, "nope.png")) << message;
}

TEST(BadInput, ImageFoldersWithoutImagesOrWithEmptyClassesAreRefused) {
  st::TempDir dir;
  const auto png = st::encode_png(st::test_picture(3, 8, 8));
  for (const char* split : {"train", "val"}) {
    fs::create_directories(dir.path() / split / "ant");
    st::write_file((dir.path() / split / "ant" / "1.png").string(), png);
    fs::create_directories(dir.path() / split / "bee");
  }
  st::write_file((dir.path() / "val" / "bee" / "1.png").string(), png);
  auto message = expect_error([&] {
    sd::open_image_folder_data(dir.file("train"), dir.file("val"), sd::DataOptions().image_size(8));
  });
  EXPECT_TRUE(contains(message, dir.file("train"))) << message;
  EXPECT_TRUE(contains(message, "class folders without images (.jpg/.png/.bmp/.ppm/.pgm/.webp): [bee]")) << message;

  fs::create_directories(dir.path() / "nothing" / "a");
  st::write_file(dir.file("nothing/a/readme.txt"), "text");
  message = expect_error([&] { sd::list_image_folder(dir.file("nothing")); });
  EXPECT_TRUE(contains(message, dir.file("nothing"))) << message;
  EXPECT_TRUE(contains(message, "has no images (.jpg/.png/.bmp/.ppm/.pgm/.webp)")) << message;
}

TEST(BadInput, CheckpointMetadataFieldsAreChecked) {
  const auto good = tr::to_json(tiny_metadata());
  struct Case {
    std::function<void(nlohmann::json&)> damage;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {[](auto& j) { j = nlohmann::json::array(); }, "not a JSON object"},
      {[](auto& j) { j["format"] = 7; }, "not a splitshare checkpoint"},
      {[](auto& j) { j["version"] = 99; }, "version 99 is newer"},
      {[](auto& j) { j.erase("arch"); }, "no 'arch' field"},
      {[](auto& j) { j["splits"] = "4"; }, "field 'splits' must be an integer"},
      {[](auto& j) { j["num_classes"] = 1e300; }, "field 'num_classes' must be an integer"},
      {[](auto& j) { j["head"] = "mlp"; }, "unknown head 'mlp'"},
      {[](auto& j) { j["stem"] = 3; }, "field 'stem' has the wrong type"},
      {[](auto& j) { j["stem"] = "tiny"; }, "unknown stem 'tiny'"},
      {[](auto& j) {
         j["num_classes"] = 0;
         j["width"] = -2;
         j["classes"] = nlohmann::json::array();
       },
       "invalid values: num_classes 0 (must be >= 1), width -2 (must be 1..4096)"},
      {[](auto& j) { j["classes"] = {"a"}; }, "lists 1 class names for num_classes=3"},
      {[](auto& j) { j["reduction"] = "max"; }, "'reduction' is 'max'"},
      {[](auto& j) { j["preprocess"] = 3; }, "'preprocess' is not a JSON object"},
      {[](auto& j) { j["preprocess"].erase("resize"); }, ""},  // optional: accepted
      {[](auto& j) { j["preprocess"]["crop"] = -1; }, "'preprocess.crop' must be positive"},
      {[](auto& j) { j["preprocess"]["mean"] = {0.1, 0.2}; }, "2 means and 1 standard deviations for 1 channels"},
      {[](auto& j) { j["preprocess"]["std"] = {0.0}; }, "'preprocess.std' holds 0"},
      {[](auto& j) { j["epoch"] = -1; }, "'epoch' is negative"},
  };
  for (const auto& c : cases) {
    auto json = good;
    c.damage(json);
    SCOPED_TRACE(json.dump());
    if (c.problem.empty()) {
      EXPECT_NO_THROW(tr::metadata_from_json(json, "meta.json"));
      continue;
    }
    const auto message = expect_error([&] { tr::metadata_from_json(json, "meta.json"); });
    EXPECT_TRUE(contains(message, "meta.json")) << message;
    EXPECT_TRUE(contains(message, c.problem)) << message;
  }
  const auto message = expect_error([] { tr::parse_checkpoint_metadata("{\"format\": ", "cut.json"); });
  EXPECT_TRUE(contains(message, "cut.json: checkpoint metadata is not valid JSON")) << message;
}

TEST(BadInput, CheckpointsThatDoNotFitAreRefusedWithEveryMismatch) {
  st::TempDir dir;
  const auto path = tiny_checkpoint(dir, "ck.pt");
  const auto bytes = st::read_file(path);
  expect_refusals(dir,
                  {{"empty.pt", "", "not a readable torch archive"},
                   {"half.pt", bytes.substr(0, bytes.size() / 2), "not a readable torch archive"},
                   {"text.pt", "not a checkpoint", "not a readable torch archive"}},
                  [](const std::string& file) { tr::load_checkpoint(file); });

  // Tensors of a 3-class 4-split SSM under metadata that claims 5 classes and 2 splits.
  auto lying = tiny_metadata();
  lying.model.num_classes(5).head(sn::HeadOptions().kind(sn::HeadKind::kSSM).splits(2));
  lying.classes.clear();
  auto model = sn::make_classifier(tiny_metadata().model);
  tr::save_checkpoint(*model, lying, dir.file("lying.pt"));
  const auto message = expect_error([&] { tr::load_checkpoint(dir.file("lying.pt")); });
  EXPECT_TRUE(contains(message, dir.file("lying.pt"))) << message;
  EXPECT_TRUE(contains(message, "5 classes")) << message;
  EXPECT_TRUE(contains(message, "unexpected keys (")) << message;
  EXPECT_TRUE(contains(message, "shape or element type mismatches (")) << message;
  EXPECT_TRUE(contains(message, "fc.0.weight: expected")) << message;
}

TEST(BadInput, CommandLineValuesAreRefused) {
  // A tiny dataset keeps the flags that are checked after the data is read fast.
  st::TempDir dir;
  write_tiny_mnist(dir.path() / "mnist", 4);
  const std::string data = " --data mnist:" + dir.file("mnist") + " --out " + dir.file("run") + " --no-progress";
  for (const auto& [args, phrase] : std::vector<std::pair<std::string, std::string>>{
           {"train --epochs 0", "--epochs must be at least 1, got 0"},
           {"train --epochs -3", "--epochs must be at least 1, got -3"},
           {"train --epochs many", "many"},
           {"train --batch-size 0", "--batch-size must be positive"},
           {"train --workers -1", "--workers must be >= 0"},
           {"train --lr=-0.1", "--lr must be >= 0"},
           {"train --threads -2", "--threads must be >= 0"},
           {"train --width 0" + data, "--width must be positive"},
           {"train --width wide" + data, "--width expects a positive integer"},
           {"train --arch resnet51" + data, "unknown architecture 'resnet51'"},
           {"train --head mlp" + data, "unknown head 'mlp'"},
           {"train --stem tiny" + data, "tiny"},
           {"train --schedule zigzag" + data, "zigzag"},
           {"train --width 8 --splits 3" + data, "must be divisible by splits (3)"},
           {"info --arch resnet18 --splits 5", "must be divisible by splits (5)"},
           {"info --arch resnet18 --splits 0", "splits"},
           {"train --data nowhere:/x", "Unknown data kind 'nowhere'"},
           {"train --data cifar10:/nonexistent/cifar", "/nonexistent/cifar"},
           {"train --no-such-flag", "no-such-flag"},
           {"predict --topk 0 --checkpoint x.pt a.png", "--topk must be positive"},
       }) {
    expect_cli_refusal(args, {phrase});
  }
  EXPECT_FALSE(fs::exists(dir.file("run")));
}

TEST(BadInput, CommandsOnBadFilesFailCleanlyAndWriteNothing) {
  st::TempDir dir;
  // mnist:DIR whose training images are truncated: train stops before creating its output folder.
  fs::create_directories(dir.path() / "mnist");
  const auto images = st::idx_images_bytes(4, 8, 8);
  st::write_file(dir.file("mnist/train-images-idx3-ubyte"), images.substr(0, images.size() - 5));
  st::write_file(dir.file("mnist/train-labels-idx1-ubyte"), st::idx_labels_bytes({0, 1, 2, 3}));
  const auto out = dir.file("run");
  expect_cli_refusal("train --data mnist:" + dir.file("mnist") + " --epochs 1 --no-progress --out " + out,
                     {dir.file("mnist/train-images-idx3-ubyte"), "is truncated"});
  EXPECT_FALSE(fs::exists(out));

  // An image folder with an empty training class.
  for (const char* split : {"train", "val"}) {
    fs::create_directories(dir.path() / "photos" / split / "empty");
    st::write_file((dir.path() / "photos" / split / "full.png").string(), "");
    fs::create_directories(dir.path() / "photos" / split / "full");
    st::write_file((dir.path() / "photos" / split / "full" / "1.png").string(),
                   st::encode_png(st::test_picture(3, 8, 8)));
  }
  expect_cli_refusal("train --data imagefolder:" + dir.file("photos") + " --epochs 1 --no-progress --out " + out,
                     {"class folders without images (.jpg/.png/.bmp/.ppm/.pgm/.webp): [empty]"});
  EXPECT_FALSE(fs::exists(out));

  // Checkpoints: truncated, and one that does not match the data.
  const auto checkpoint = tiny_checkpoint(dir, "ck.pt");
  const auto bytes = st::read_file(checkpoint);
  st::write_file(dir.file("cut.pt"), bytes.substr(0, bytes.size() - 100));
  expect_cli_refusal("info --checkpoint " + dir.file("cut.pt"), {dir.file("cut.pt"), "truncated"});
  write_tiny_mnist(dir.path() / "mnist-ok", 4);
  expect_cli_refusal("eval --checkpoint " + checkpoint + " --data mnist:" + dir.file("mnist-ok"),
                     {checkpoint, "predicts 3 classes but the data has 10"});

  // predict on a corrupt image: no --dump-inputs file appears.
  st::write_file(dir.file("broken.jpg"), st::encode_jpeg(st::test_picture(3, 16, 16)).substr(0, 100));
  const auto dump = dir.file("inputs.pt");
  expect_cli_refusal("predict --checkpoint " + checkpoint + " --dump-inputs " + dump + " " + dir.file("broken.jpg"),
                     {dir.file("broken.jpg"), "Premature end of JPEG file"});
  EXPECT_FALSE(fs::exists(dump));
  EXPECT_FALSE(fs::exists(dump + ".tmp"));
  expect_cli_refusal("predict --checkpoint " + checkpoint + " " + dir.file("missing.png"), {dir.file("missing.png")});

  // report on a folder whose summary.json is cut short.
  fs::create_directories(dir.path() / "report");
  st::write_file(dir.file("report/summary.json"), "{\"best\": {\"top1\": 0.9");
  st::write_file(dir.file("report/metrics.jsonl"), "\n");  // no epoch finished yet
  expect_cli_refusal("report " + dir.file("report"), {dir.file("report/summary.json"), "not valid JSON"});
  EXPECT_FALSE(fs::exists(dir.file("report/report.html")));
}

TEST(BadInput, ModelDifferencesListEveryField) {
  const auto expected = tiny_metadata().model;
  EXPECT_TRUE(tr::model_differences(expected, expected).empty());
  auto found = expected;
  found.width(8).num_classes(5).head(sn::HeadOptions().kind(sn::HeadKind::kSSM).splits(2));
  EXPECT_EQ(tr::model_differences(expected, found),
            (std::vector<std::string>{"splits: expected 4, found 2", "num_classes: expected 3, found 5",
                                      "width: expected 4, found 8"}));
  found = expected;
  found.arch("resnet18").head(sn::HeadOptions().kind(sn::HeadKind::kLinear));
  EXPECT_EQ(tr::model_differences(expected, found),
            (std::vector<std::string>{"arch: expected resnet10, found resnet18", "head: expected ssm, found linear"}));
}
