// Importing weights saved from Python (torchvision): parity with torchvision through the
// import path, head handling, and clear errors for files that do not fit.
#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/checkpoint/import.h>

#include <nlohmann/json.hpp>

#include "support.h"

#include <cstdio>
#include <functional>
#include <memory>

using splitshare::testing::expect_error;

namespace sn = splitshare::nn;
namespace tr = splitshare::train;
using splitshare::testing::TempDir;

namespace {

// Same libtorch build and kernels on both sides: only float32 summation order may differ.
constexpr double kParityAtol = 1e-5;
constexpr double kParityRtol = 1e-5;

const std::string kCli = SPLITSHARE_CLI;

// Runs tests/python/make_parity.py: random torchvision weights in `format` (plus `extra`
// "FORMAT=PATH" copies) and a reference input/logits pair.
::testing::AssertionResult make_parity(const std::string& arch, const std::string& weights,
                                       const std::string& reference, const std::string& format,
                                       const std::string& extra_args = "") {
  std::string output;
  const std::string command = std::string(splitshare::testing::python()) + " " SPLITSHARE_SOURCE_DIR
                              "/tests/python/make_parity.py " + arch + " " + weights + " " + reference +
                              " --format " + format + " " + extra_args;
  if (splitshare::testing::run_command(command, &output) != 0) {
    return ::testing::AssertionFailure() << command << " failed:\n" << output;
  }
  return ::testing::AssertionSuccess();
}


sn::ClassifierOptions linear(const std::string& arch, int64_t classes) {
  return sn::ClassifierOptions().arch(arch).num_classes(classes).head(sn::HeadOptions().kind(sn::HeadKind::kLinear));
}

// The largest |difference| between the imported model's logits and torchvision's.
double check_logits(sn::ClassifierImpl& model, const std::string& reference) {
  auto ref = tr::read_archive_tensors(reference);
  model.eval();
  torch::NoGradGuard no_grad;
  auto logits = model.forward(ref.at("input")).logits;
  splitshare::testing::expect_close(logits, ref.at("logits"), kParityAtol, kParityRtol);
  EXPECT_GT(ref.at("logits").abs().max().item<double>(), 0.1);  // the reference is not trivially zero
  return (logits - ref.at("logits")).abs().max().item<double>();
}

// Full torchvision models (1000 classes) through import_weights, architecture given or inferred.
void check_import_parity(const std::string& arch, const std::string& format, bool infer_arch) {
  if (!splitshare::testing::have_python_torch()) GTEST_SKIP() << "no Python with torch + torchvision (scripts/setup)";
  TempDir dir;
  const auto weights = dir.file("weights.pt"), reference = dir.file("reference.pt");
  ASSERT_TRUE(make_parity(arch, weights, reference, format));
  auto result = tr::import_weights(weights, tr::ImportOptions().model(linear(infer_arch ? "auto" : arch, 0)));
  EXPECT_EQ(result.metadata.model.arch(), arch);
  EXPECT_EQ(result.metadata.model.num_classes(), 1000);
  EXPECT_EQ(tr::to_string(result.format), format == "script" ? "script module" : "state dict");
  EXPECT_TRUE(result.report.head_loaded);
  EXPECT_TRUE(result.report.notices.empty()) << result.report.notices.front();
  EXPECT_TRUE(result.report.unused.empty());
  const double diff = check_logits(*result.model, reference);
  std::printf("[ parity   ] %s (%s): max |logit difference| %.3g\n", arch.c_str(), format.c_str(), diff);
  ::testing::Test::RecordProperty("max_abs_diff", std::to_string(diff));
}

// resnet18 with 10 classes in every format, made once for the tests that share it.
class ImportResNet18 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!splitshare::testing::have_python_torch()) return;
    dir_ = std::make_unique<TempDir>();
    auto made = make_parity("resnet18", script(), reference(), "script",
                            "--classes 10 --size 48 --extra state_dict=" + state_dict() +
                                " --extra ordered_dict=" + dir_->file("ordered.pt"));
    failure_ = made ? "" : made.message();
  }
  static void TearDownTestSuite() { dir_.reset(); }
  void SetUp() override {
    if (!splitshare::testing::have_python_torch()) GTEST_SKIP() << "no Python with torch + torchvision (scripts/setup)";
    ASSERT_TRUE(failure_.empty()) << failure_;
  }

  static std::string script() { return dir_->file("resnet18-script.pt"); }
  static std::string state_dict() { return dir_->file("resnet18-state.pt"); }
  static std::string reference() { return dir_->file("resnet18-reference.pt"); }
  static std::string file(const std::string& name) { return dir_->file(name); }

 private:
  static std::unique_ptr<TempDir> dir_;
  static std::string failure_;
};

std::unique_ptr<TempDir> ImportResNet18::dir_;
std::string ImportResNet18::failure_ = "make_parity.py did not run";

}  // namespace

TEST(ImportParity, ResNet50StateDict) { check_import_parity("resnet50", "state_dict", false); }
TEST(ImportParity, ResNeXt50ScriptedModule) { check_import_parity("resnext50_32x4d", "script", false); }
TEST(ImportParity, WideResNet50StateDictArchitectureInferred) { check_import_parity("wide_resnet50_2", "state_dict", true); }

TEST_F(ImportResNet18, BothFormatsMatchTorchvision) {
  for (const auto& path : {script(), state_dict()}) {
    auto result = tr::import_weights(path, tr::ImportOptions().model(linear("resnet18", 10)));
    EXPECT_TRUE(result.report.head_loaded) << path;
    EXPECT_EQ(result.report.copied, static_cast<int64_t>(sn::named_state(*result.model).size()));
    const double diff = check_logits(*result.model, reference());
    std::printf("[ parity   ] resnet18 (%s): max |logit difference| %.3g\n", tr::to_string(result.format).c_str(),
                diff);
  }
}

TEST_F(ImportResNet18, InfersArchitectureAndClassCount) {
  auto weights = tr::read_weights(state_dict());
  EXPECT_EQ(tr::infer_architecture(weights.tensors), "resnet18");
  EXPECT_EQ(tr::classifier_classes(weights.tensors), 10);
  auto result = tr::import_weights(script(), tr::ImportOptions().model(linear("auto", 0)));
  EXPECT_EQ(result.metadata.model.arch(), "resnet18");
  EXPECT_EQ(result.metadata.model.num_classes(), 10);
  // Metadata for predict: torchvision's evaluation preprocessing, and where the weights came from.
  EXPECT_EQ(result.metadata.preprocess.resize.value_or(0), 256);
  EXPECT_EQ(result.metadata.preprocess.crop.value_or(0), 224);
  EXPECT_EQ(result.metadata.extra["import"]["format"], "script module");
}

TEST_F(ImportResNet18, CliWritesACheckpointWithTheSameLogits) {
  const auto out = file("imported.pt");
  std::string log;
  ASSERT_EQ(splitshare::testing::run_command(kCli + " import --arch resnet18 --head linear --weights " +
                                                 state_dict() + " --out " + out + " --json 2>/dev/null", &log), 0)
      << log;
  auto json = nlohmann::json::parse(log);
  EXPECT_EQ(json["arch"], "resnet18");
  EXPECT_EQ(json["num_classes"], 10);
  EXPECT_EQ(json["head_loaded"], true);
  EXPECT_EQ(json["format"], "state dict");
  auto loaded = tr::load_checkpoint(out);
  check_logits(*loaded.model, reference());
}

TEST_F(ImportResNet18, NewClassCountReinitialisesTheHeadWithANotice) {
  torch::manual_seed(0);
  auto result = tr::import_weights(state_dict(), tr::ImportOptions().model(linear("resnet18", 3)).seed(7));
  EXPECT_FALSE(result.report.head_loaded);
  EXPECT_EQ(result.report.source_classes, 10);
  ASSERT_EQ(result.report.notices.size(), 1u);
  const auto& notice = result.report.notices[0];
  EXPECT_NE(notice.find("10 classes, the model 3"), std::string::npos) << notice;
  EXPECT_NE(notice.find("re-initialised"), std::string::npos) << notice;
  EXPECT_EQ(result.report.unused, (std::vector<std::string>{"fc.bias", "fc.weight"}));
  // The backbone is torchvision's, bit for bit; the head has the new shape.
  auto weights = tr::read_weights(state_dict()).tensors;
  std::map<std::string, torch::Tensor> state;
  for (auto& [name, tensor] : sn::named_state(*result.model)) state[name] = tensor;
  EXPECT_TRUE(torch::equal(state.at("layer4.1.conv2.weight"), weights.at("layer4.1.conv2.weight")));
  EXPECT_TRUE(torch::equal(state.at("layer2.0.bn1.running_var"), weights.at("layer2.0.bn1.running_var")));
  EXPECT_EQ(state.at("fc.weight").sizes().vec(), (std::vector<int64_t>{3, 512}));
  // The fresh head is seeded: the same seed gives the same head.
  auto again = tr::import_weights(state_dict(), tr::ImportOptions().model(linear("resnet18", 3)).seed(7));
  EXPECT_TRUE(torch::equal(again.model->named_parameters()["head.fc.weight"], state.at("fc.weight")));

  // The CLI prints the notice.
  std::string log;
  ASSERT_EQ(splitshare::testing::run_command(kCli + " import --arch resnet18 --head linear --classes 3 --weights " +
                                                 script() + " --out " + file("new-classes.pt"), &log), 0) << log;
  EXPECT_NE(log.find("notice:"), std::string::npos) << log;
  EXPECT_NE(log.find("re-initialised (fine-tuning to new classes)"), std::string::npos) << log;
}

TEST_F(ImportResNet18, SsmHeadOnATorchvisionBackbone) {
  auto options = sn::ClassifierOptions().arch("resnet18").num_classes(5).head(sn::HeadOptions().kind(sn::HeadKind::kSSM));
  auto result = tr::import_weights(script(), tr::ImportOptions().model(options).classes({"a", "b", "c", "d", "e"}));
  EXPECT_FALSE(result.report.head_loaded);
  ASSERT_EQ(result.report.notices.size(), 1u);
  EXPECT_NE(result.report.notices[0].find("does not fit the ssm head (4 splits)"), std::string::npos)
      << result.report.notices[0];
  EXPECT_EQ(result.metadata.classes[4], "e");
  // Saved and re-imported, the SSM head is found and loaded.
  tr::save_checkpoint(*result.model, result.metadata, file("ssm.pt"));
  auto again = tr::import_weights(file("ssm.pt"), tr::ImportOptions().model(options));
  EXPECT_TRUE(again.report.head_loaded);
  EXPECT_TRUE(again.report.notices.empty());
}

TEST_F(ImportResNet18, WrongArchitectureNamesTheKeysAndTheLikelyArchitecture) {
  auto msg = expect_error([&] { tr::import_weights(script(), tr::ImportOptions().model(linear("resnet34", 10))); });
  EXPECT_NE(msg.find("resnet18-script.pt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("do not fit resnet34 (they look like resnet18)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing keys"), std::string::npos) << msg;
  EXPECT_NE(msg.find("layer1.2.conv1.weight"), std::string::npos) << msg;

  msg = expect_error([&] { tr::import_weights(state_dict(), tr::ImportOptions().model(linear("resnet50", 10))); });
  EXPECT_NE(msg.find("missing keys"), std::string::npos) << msg;
  EXPECT_NE(msg.find("layer1.0.conv3.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("shape mismatches"), std::string::npos) << msg;
  EXPECT_NE(msg.find("layer1.0.conv1.weight: expected [64, 64, 1, 1], got [64, 64, 3, 3]"), std::string::npos) << msg;

  msg = expect_error(
      [&] { tr::import_weights(state_dict(), tr::ImportOptions().model(linear("resnet18", 10).width(32))); });
  EXPECT_NE(msg.find("conv1.weight: expected [32, 3, 7, 7], got [64, 3, 7, 7]"), std::string::npos) << msg;

  // The CLI says the same and fails.
  std::string log;
  EXPECT_NE(splitshare::testing::run_command(kCli + " import --arch resnet34 --weights " + script() + " --out " +
                                                 file("never.pt"), &log), 0);
  EXPECT_NE(log.find("do not fit resnet34"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(file("never.pt")));

  // Non-strict: what matches is copied, the rest is reported.
  auto partial = tr::import_weights(script(), tr::ImportOptions().model(linear("resnet34", 10)).strict(false));
  EXPECT_FALSE(partial.report.backbone.ok());
  EXPECT_GT(partial.report.copied, 0);
}

TEST_F(ImportResNet18, TruncatedForeignAndUnreadableFilesAreRefusedClearly) {
  for (const auto& path : {script(), state_dict()}) {
    const auto bytes = splitshare::testing::read_file(path);
    splitshare::testing::write_file(file("cut.pt"), bytes.substr(0, bytes.size() / 2));
    auto msg = expect_error([&] { tr::read_weights(file("cut.pt")); });
    EXPECT_NE(msg.find("cut.pt: truncated or corrupt torch archive"), std::string::npos) << msg;
  }
  splitshare::testing::write_file(file("notes.txt"), "conv1.weight = 3\n");
  auto msg = expect_error([&] { tr::read_weights(file("notes.txt")); });
  EXPECT_NE(msg.find("notes.txt: not a torch archive"), std::string::npos) << msg;

  msg = expect_error([&] { tr::read_weights(file("ordered.pt")); });
  EXPECT_NE(msg.find("OrderedDict"), std::string::npos) << msg;
  EXPECT_NE(msg.find("torch.save(dict(model.state_dict())"), std::string::npos) << msg;

  splitshare::testing::write_file(file("legacy.pt"), std::string("\x80\x02\x8a\x0al\xfc\x9c", 7));
  msg = expect_error([&] { tr::read_weights(file("legacy.pt")); });
  EXPECT_NE(msg.find("legacy"), std::string::npos) << msg;

  msg = expect_error([&] { tr::read_weights(file("absent.pt")); });
  EXPECT_NE(msg.find("not found"), std::string::npos) << msg;

  std::string log;
  EXPECT_NE(splitshare::testing::run_command(kCli + " import --arch resnet18 --weights " + file("notes.txt") +
                                                 " --out " + file("never.pt"), &log), 0);
  EXPECT_NE(log.find("not a torch archive"), std::string::npos) << log;
}
