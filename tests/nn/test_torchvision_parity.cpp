// Our backbones against Python torchvision (python3-torchvision), same weights, same input.
#include <splitshare/nn/classifier.h>
#include <splitshare/checkpoint/checkpoint.h>

#include "support.h"

namespace sn = splitshare::nn;
using splitshare::testing::TempDir;

namespace {

void check_parity(const std::string& arch) {
  if (!splitshare::testing::have_python_torch()) GTEST_SKIP() << "no Python with torch + torchvision (scripts/setup)";
  TempDir dir;
  const auto weights = dir.file("weights.pt"), reference = dir.file("reference.pt");
  std::string output;
  const std::string command = std::string(splitshare::testing::python()) + " " SPLITSHARE_SOURCE_DIR
                              "/tests/python/make_parity.py " + arch + " " + weights + " " + reference;
  ASSERT_EQ(splitshare::testing::run_command(command, &output), 0) << output;

  sn::Classifier model(sn::ClassifierOptions().arch(arch).num_classes(1000).head(
      sn::HeadOptions().kind(sn::HeadKind::kLinear)));
  auto mismatch = sn::load_state(*model, splitshare::train::read_archive_tensors(weights));
  ASSERT_TRUE(mismatch.ok()) << mismatch.describe();
  auto ref = splitshare::train::read_archive_tensors(reference);
  model->eval();
  torch::NoGradGuard no_grad;
  auto logits = model->forward(ref.at("input")).logits;
  // Same libtorch, same kernels: differences are float32 summation-order rounding only.
  splitshare::testing::expect_close(logits, ref.at("logits"), 1e-4, 1e-4);
  EXPECT_GT(ref.at("logits").abs().max().item<double>(), 0.1);  // the reference is not trivially zero
}

}  // namespace

TEST(TorchvisionParity, ResNet18) { check_parity("resnet18"); }
TEST(TorchvisionParity, ResNet50) { check_parity("resnet50"); }
