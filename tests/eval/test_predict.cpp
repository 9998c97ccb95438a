// `splitshare predict`: the checkpoint's own preprocessing on JPEG/PNG, grey/colour, odd
// sizes; the pinned JSON; and the same logits from the Python module on the same images.
#include <splitshare/image/decode.h>
#include <splitshare/eval/predict.h>
#include <splitshare/checkpoint/checkpoint.h>

#include <nlohmann/json.hpp>

#include "image_writers.h"
#include "support.h"

#include <cmath>

namespace sn = splitshare::nn;
namespace tr = splitshare::train;
namespace sd = splitshare::data;
namespace se = splitshare::eval;
using splitshare::testing::run_command;
using splitshare::testing::TempDir;

namespace {

const std::string kCli = SPLITSHARE_CLI;
constexpr int64_t kClasses = 6;
constexpr int64_t kSplits = 4;

// A small SSM model with trained-looking BatchNorm statistics, saved as a checkpoint.
tr::CheckpointMetadata save_model(const std::string& path, int64_t channels, sn::Stem stem, sd::Preprocess preprocess) {
  tr::CheckpointMetadata meta;
  meta.model = sn::ClassifierOptions().arch("resnet10").width(8).in_channels(channels).stem(stem).num_classes(kClasses)
                   .head(sn::HeadOptions().kind(sn::HeadKind::kSSM).splits(kSplits));
  meta.classes = {"T-shirt", "trouser", "pullover", "dress", "coat", "sandal"};
  meta.preprocess = std::move(preprocess);
  torch::manual_seed(11);
  auto model = sn::make_classifier(meta.model);
  model->train();
  for (int i = 0; i < 3; ++i) model->forward(torch::randn({8, channels, 32, 32}) * 0.5 + 0.2);
  tr::save_checkpoint(*model, meta, path);
  return meta;
}

// Fashion-MNIST-like: grey, the whole image resized to 28 x 28.
sd::Preprocess small_preprocess() {
  sd::Preprocess p;
  p.channels = 1;
  p.size = 28;
  p.mean = {0.286};
  p.std = {0.353};
  return p;
}

// Photo-like: RGB, shorter side to 40, centre crop 32.
sd::Preprocess photo_preprocess() {
  sd::Preprocess p;
  p.channels = 3;
  p.resize = 40;
  p.crop = 32;
  p.mean = {0.485, 0.456, 0.406};
  p.std = {0.229, 0.224, 0.225};
  return p;
}

// Grey and colour, PNG and JPEG, none of them square or the model's size.
std::vector<std::string> write_images(const TempDir& dir) {
  namespace t = splitshare::testing;
  std::vector<std::string> paths = {dir.file("grey.png"), dir.file("colour.png"), dir.file("grey.jpg"),
                                    dir.file("colour.jpg")};
  t::write_file(paths[0], t::encode_png(t::test_picture(1, 37, 23, 1)));
  t::write_file(paths[1], t::encode_png(t::test_picture(3, 50, 61, 2)));
  t::write_file(paths[2], t::encode_jpeg(t::test_picture(1, 45, 19, 3)));
  t::write_file(paths[3], t::encode_jpeg(t::test_picture(3, 77, 101, 4)));
  return paths;
}

std::string joined(const std::vector<std::string>& paths) {
  std::string out;
  for (const auto& p : paths) out += " " + p;
  return out;
}

nlohmann::json run_predict(const std::string& args) {
  std::string out;
  // In braces: run_command adds 2>&1 after the command, which would undo a plain 2>/dev/null.
  EXPECT_EQ(run_command("{ " + kCli + " predict " + args + " 2>/dev/null; }", &out), 0) << args << "\n" << out;
  try {
    return nlohmann::json::parse(out);
  } catch (const std::exception&) {
    ADD_FAILURE() << "not JSON from 'predict " << args << "': " << out;
    return {};
  }
}

torch::Tensor to_tensor(const nlohmann::json& values) { return torch::tensor(values.get<std::vector<double>>()); }

// Every field of one prediction, checked against itself (probabilities = softmax of the logits,
// logits = mean of the heads) and against the metadata.
void check_prediction(const nlohmann::json& p, const std::string& path, int64_t topk,
                      const std::vector<std::string>& classes) {
  EXPECT_EQ(p["path"], path);
  auto logits = to_tensor(p["logits"]);
  ASSERT_EQ(logits.size(0), kClasses);
  ASSERT_EQ(p["head_logits"].size(), static_cast<size_t>(kSplits));
  auto heads = torch::zeros({kClasses}, torch::kDouble);
  for (const auto& h : p["head_logits"]) {
    ASSERT_EQ(h.size(), static_cast<size_t>(kClasses));
    heads += to_tensor(h);
  }
  splitshare::testing::expect_close(heads / kSplits, logits, 1e-5);
  auto probabilities = torch::softmax(logits, 0);
  ASSERT_EQ(p["topk"].size(), static_cast<size_t>(topk));
  double previous = 1.0;
  for (const auto& entry : p["topk"]) {
    const auto index = entry["class"].get<int64_t>();
    ASSERT_GE(index, 0);
    ASSERT_LT(index, kClasses);
    EXPECT_EQ(entry["label"], classes[static_cast<size_t>(index)]);
    EXPECT_NEAR(entry["prob"].get<double>(), probabilities[index].item<double>(), 1e-6);
    EXPECT_LE(entry["prob"].get<double>(), previous);
    previous = entry["prob"].get<double>();
  }
  EXPECT_EQ(p["topk"][0]["class"], logits.argmax().item<int64_t>());
}

}  // namespace

TEST(Predict, JsonHasThePinnedShapeForEveryImageKind) {
  TempDir dir;
  const auto paths = write_images(dir);
  for (auto [name, channels, stem, preprocess] :
       {std::tuple{"small.pt", int64_t{1}, sn::Stem::kSmall, small_preprocess()},
        std::tuple{"photo.pt", int64_t{3}, sn::Stem::kImageNet, photo_preprocess()}}) {
    const auto checkpoint = dir.file(name);
    auto meta = save_model(checkpoint, channels, stem, preprocess);
    auto json = run_predict("--checkpoint " + checkpoint + " --topk 3 --json" + joined(paths));
    ASSERT_EQ(json["predictions"].size(), paths.size()) << json.dump();
    for (size_t i = 0; i < paths.size(); ++i) check_prediction(json["predictions"][i], paths[i], 3, meta.classes);

    // The same logits as the library on the same preprocessed image.
    auto loaded = tr::load_checkpoint(checkpoint);
    loaded.model->eval();
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < paths.size(); ++i) {
      auto input = se::load_image(paths[i], meta.preprocess);
      const int64_t side = channels == 1 ? 28 : 32;
      ASSERT_EQ(input.sizes().vec(), (std::vector<int64_t>{channels, side, side})) << paths[i];
      auto logits = loaded.model->forward(input.unsqueeze(0)).logits[0];
      splitshare::testing::expect_close(to_tensor(json["predictions"][i]["logits"]), logits, 1e-5, 1e-5);
    }
  }
}

TEST(Predict, TopkIsCappedAndTheTableIsReadable) {
  TempDir dir;
  const auto paths = write_images(dir);
  save_model(dir.file("ck.pt"), 3, sn::Stem::kImageNet, photo_preprocess());
  auto json = run_predict("--checkpoint " + dir.file("ck.pt") + " --topk 50 --json " + paths[3]);
  ASSERT_EQ(json["predictions"][0]["topk"].size(), static_cast<size_t>(kClasses));

  std::string table;
  ASSERT_EQ(run_command(kCli + " predict --checkpoint " + dir.file("ck.pt") + " --topk 2 " + paths[3], &table), 0)
      << table;
  EXPECT_NE(table.find(paths[3]), std::string::npos) << table;
  const auto& top = json["predictions"][0]["topk"][0];
  EXPECT_NE(table.find(" 1. " + top["label"].get<std::string>()), std::string::npos) << table;
  char percent[32];
  std::snprintf(percent, sizeof percent, "%.2f%%", 100 * top["prob"].get<double>());
  EXPECT_NE(table.find(percent), std::string::npos) << table;
}

TEST(Predict, Bfloat16BackboneGivesNearlyTheSameProbabilities) {
  TempDir dir;
  const auto paths = write_images(dir);
  save_model(dir.file("ck.pt"), 3, sn::Stem::kImageNet, photo_preprocess());
  const auto args = "--checkpoint " + dir.file("ck.pt") + " --topk 6 --json " + paths[3];
  auto exact = run_predict(args);
  auto half = run_predict(args + " --amp bf16");
  const auto& a = exact["predictions"][0]["logits"];
  const auto& b = half["predictions"][0]["logits"];
  ASSERT_EQ(a.size(), b.size());
  double worst = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(a[i].get<double>() - b[i].get<double>()));
    scale = std::max(scale, std::abs(a[i].get<double>()));
  }
  EXPECT_LT(worst, 0.05 * scale + 0.05) << "bf16 logits " << b.dump() << " against " << a.dump();
  EXPECT_GT(worst, 0) << "--amp bf16 should round somewhere";
}

TEST(Predict, ImagesAtTheModelSizeAreOnlyNormalised) {
  // A 28 x 28 grey PNG for a 28-px model: no resampling, just (v / 255 - mean) / std.
  TempDir dir;
  auto pixels = splitshare::testing::test_picture(1, 28, 28, 5);
  splitshare::testing::write_file(dir.file("exact.png"), splitshare::testing::encode_png(pixels));
  const auto p = small_preprocess();
  auto input = se::load_image(dir.file("exact.png"), p);
  auto expected = (pixels.to(torch::kFloat) / 255 - p.mean[0]) / p.std[0];
  splitshare::testing::expect_close(input, expected, 1e-5);
}

TEST(Predict, RefusesUnreadableInputsClearly) {
  TempDir dir;
  const auto paths = write_images(dir);
  auto preprocess = small_preprocess();
  save_model(dir.file("ck.pt"), 1, sn::Stem::kSmall, preprocess);
  splitshare::testing::write_file(dir.file("notes.png"), "not really a png");
  std::string out;
  EXPECT_NE(run_command(kCli + " predict --checkpoint " + dir.file("ck.pt") + " " + dir.file("notes.png"), &out), 0);
  EXPECT_NE(out.find("notes.png"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(run_command(kCli + " predict --checkpoint " + dir.file("ck.pt"), &out), 0);
  EXPECT_NE(out.find("no image files given"), std::string::npos) << out;

  // A checkpoint written before the input size was recorded: say what is missing, and --size fixes it.
  preprocess.size.reset();
  save_model(dir.file("old.pt"), 1, sn::Stem::kSmall, preprocess);
  out.clear();
  EXPECT_NE(run_command(kCli + " predict --checkpoint " + dir.file("old.pt") + " " + paths[0], &out), 0);
  EXPECT_NE(out.find("pass --size N"), std::string::npos) << out;
  auto json = run_predict("--checkpoint " + dir.file("old.pt") + " --size 28 --json " + paths[0]);
  EXPECT_EQ(json["predictions"].size(), 1u);
}

TEST(Predict, PythonModuleGivesTheSameLogitsOnTheSameImages) {
  if (!splitshare::testing::have_python_torch()) GTEST_SKIP() << "no Python with torch (scripts/setup)";
  TempDir dir;
  const auto paths = write_images(dir);
  for (auto [name, channels, stem, preprocess] :
       {std::tuple{"small.pt", int64_t{1}, sn::Stem::kSmall, small_preprocess()},
        std::tuple{"photo.pt", int64_t{3}, sn::Stem::kImageNet, photo_preprocess()}}) {
    const auto checkpoint = dir.file(name);
    save_model(checkpoint, channels, stem, preprocess);
    const auto inputs = dir.file("inputs.pt");
    auto json = run_predict("--checkpoint " + checkpoint + " --json --dump-inputs " + inputs + joined(paths));
    ASSERT_EQ(json["predictions"].size(), paths.size());

    // Python: the checkpoint through splitshare_torch, once on predict's preprocessed inputs
    // and once on its own preprocessing of the image files (PIL + torchvision).
    const std::string script =
        "import sys, json, torch\n"
        "sys.path.insert(0, '" SPLITSHARE_SOURCE_DIR "/python')\n"
        "import splitshare_torch as ss\n"
        "model, meta = ss.load_checkpoint(sys.argv[1])\n"
        "given = torch.load(sys.argv[2])\n"
        "own = torch.stack([ss.load_image(p, meta) for p in sys.argv[3:]])\n"
        "with torch.no_grad():\n"
        "    a, b = model(given), model(own)\n"
        "print(json.dumps({'logits': a.logits.tolist(), 'heads': [h.tolist() for h in a.head_logits],\n"
        "                  'own_logits': b.logits.tolist(),\n"
        "                  'input_diff': [float((x - y).abs().max()) for x, y in zip(given, own)]}))\n";
    splitshare::testing::write_file(dir.file("roundtrip.py"), script);
    std::string output;
    ASSERT_EQ(run_command(std::string(splitshare::testing::python()) + " " + dir.file("roundtrip.py") + " " +
                              checkpoint + " " + inputs + joined(paths), &output), 0) << output;
    auto python = nlohmann::json::parse(output.substr(output.find('{')));
    double worst = 0, worst_own = 0, worst_input = 0;
    for (size_t i = 0; i < paths.size(); ++i) {
      const auto& ours = json["predictions"][i];
      auto logits = to_tensor(ours["logits"]);
      // Same weights, same input: float32 rounding only.
      splitshare::testing::expect_close(to_tensor(python["logits"][i]), logits, 1e-5, 1e-5);
      for (size_t h = 0; h < static_cast<size_t>(kSplits); ++h) {
        splitshare::testing::expect_close(to_tensor(python["heads"][h][i]), to_tensor(ours["head_logits"][h]), 1e-5,
                                          1e-5);
      }
      // Python's own preprocessing decodes the same pixels (PIL, libjpeg-turbo) and resizes with
      // torchvision's antialiased bilinear: float rounding of the resampling only.
      // One exception: a colour JPEG for a grey model. libjpeg hands us its Y channel, PIL
      // converts its RGB output with the ITU-R 601 formula: the two differ by at most one grey
      // level on some pixels (one level = 1 / (255 * std) after normalisation).
      const bool jpeg_to_grey = channels == 1 && paths[i] == dir.file("colour.jpg");
      const double input_tolerance = jpeg_to_grey ? 1.0 / (255.0 * preprocess.std[0]) : 1e-4;
      const double input_diff = python["input_diff"][i].get<double>();
      EXPECT_LT(input_diff, input_tolerance) << paths[i];
      splitshare::testing::expect_close(to_tensor(python["own_logits"][i]), logits, 1e-4, 1e-4);
      worst = std::max(worst, (to_tensor(python["logits"][i]) - logits).abs().max().item<double>());
      worst_own = std::max(worst_own, (to_tensor(python["own_logits"][i]) - logits).abs().max().item<double>());
      worst_input = std::max(worst_input, input_diff);
    }
    std::printf("[ roundtrip] %s: max |logit diff| %.3g on predict's inputs, %.3g with Python's preprocessing "
                "(inputs differ by %.3g)\n", name, worst, worst_own, worst_input);
  }
}
