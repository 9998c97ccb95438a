#include <splitshare/nn/classifier.h>

#include "support.h"

namespace sn = splitshare::nn;

namespace {

int64_t params(const std::string& arch, sn::HeadOptions head, int64_t classes = 1000) {
  sn::Classifier m(sn::ClassifierOptions().arch(arch).num_classes(classes).head(head));
  return sn::count_parameters(*m);
}

// One training step of a block as `train` runs it (channels-last, train mode) against a float64
// copy: every parameter's gradient.
void expect_gradients_of_float64(int64_t in_planes, int64_t stride) {
  torch::manual_seed(0);
  sn::ResidualBlock block(sn::ResidualBlockOptions(in_planes, 8).stride(stride));
  auto reference = std::dynamic_pointer_cast<sn::ResidualBlockImpl>(block->clone());
  reference->to(torch::kDouble);
  for (auto& p : block->parameters()) {
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
  }
  const auto x = torch::randn({16, in_planes, 28, 28}).contiguous(torch::MemoryFormat::ChannelsLast);
  const auto g = torch::randn({16, 8, 28 / stride, 28 / stride});
  (block->forward(x) * g).sum().backward();
  (reference->forward(x.to(torch::kDouble)) * g.to(torch::kDouble)).sum().backward();
  const auto theirs = reference->named_parameters();
  for (const auto& item : block->named_parameters()) {
    SCOPED_TRACE("in_planes " + std::to_string(in_planes) + " stride " + std::to_string(stride) + ": " + item.key());
    splitshare::testing::expect_close(item.value().grad(), theirs[item.key()].grad(), 1e-2, 1e-3);
  }
}

}  // namespace

// oneDNN's AVX2 kernels compute a wrong weight gradient for strided 1x1 convolutions of inputs with
// fewer than 8 channels (and may crash or spin): checked on this CPU's kernels, then in a child process
// held to the AVX2 ones, as on a CPU without AVX-512.
TEST(ResNet, NarrowStridedBlocksGetTheRightGradientsOnEveryOneDnnIsa) {
  torch::set_num_threads(2);
  for (int64_t in : {2, 4, 7, 16}) expect_gradients_of_float64(in, 2);
  expect_gradients_of_float64(4, 1);
  if (!splitshare::testing::in_avx2_child()) {
    splitshare::testing::expect_passes_on_avx2("ResNet.NarrowStridedBlocksGetTheRightGradientsOnEveryOneDnnIsa");
  }
}

TEST(ResNet, ParameterCountsMatchTorchvisionAndThePaper) {
  using sn::HeadKind;
  EXPECT_EQ(params("resnet50", sn::HeadOptions().kind(HeadKind::kLinear)), 25557032);
  // Table 4 truncates: 25.55 M, 27.60 M, 29.65 M above; "28.63 M" for SSM is the default, BatchNorm+ReLU on
  // the first three splits (Section 3's text). Algorithm 1's BatchNorm on all four would be 28.64 M.
  EXPECT_EQ(params("resnet50", sn::HeadOptions().kind(HeadKind::kSSM)), 28638176);
  EXPECT_EQ(params("resnet50", sn::HeadOptions().kind(HeadKind::kSSM).last_plain(false)), 28642272);
  EXPECT_EQ(params("resnet50", sn::HeadOptions().kind(HeadKind::kKFC).k(2)), 27606032);
  EXPECT_EQ(params("resnet50", sn::HeadOptions().kind(HeadKind::kKFC).k(3)), 29655032);
  EXPECT_EQ(params("resnet18", sn::HeadOptions().kind(HeadKind::kLinear)), 11689512);
  EXPECT_EQ(params("resnet101", sn::HeadOptions().kind(HeadKind::kLinear)), 44549160);
  EXPECT_EQ(params("resnext50_32x4d", sn::HeadOptions().kind(HeadKind::kLinear)), 25028904);
  EXPECT_EQ(params("wide_resnet50_2", sn::HeadOptions().kind(HeadKind::kLinear)), 68883240);
  EXPECT_EQ(params("resnet34", sn::HeadOptions().kind(HeadKind::kLinear)), 21797672);
}

TEST(ResNet, TorchvisionParameterNames) {
  sn::Classifier m(sn::ClassifierOptions().arch("resnet50").head(sn::HeadOptions().kind(sn::HeadKind::kLinear)));
  std::set<std::string> names;
  for (auto& [name, t] : sn::named_state(*m)) names.insert(name);
  for (auto n : {"conv1.weight", "bn1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer1.0.conv3.weight",
                 "layer1.0.bn3.bias", "layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_var",
                 "layer4.2.bn3.num_batches_tracked", "fc.weight", "fc.bias"}) {
    EXPECT_TRUE(names.count(n)) << n;
  }
  EXPECT_FALSE(names.count("layer1.1.downsample.0.weight"));
  EXPECT_EQ(names.size(), 320u);  // len(torchvision.models.resnet50().state_dict())
}

TEST(ResNet, ShapesForBothStems) {
  sn::Classifier big(sn::ClassifierOptions().arch("resnet18").num_classes(7));
  big->eval();
  auto fm = big->forward_features(torch::randn({2, 3, 64, 64}));
  EXPECT_EQ(fm.sizes(), (std::vector<int64_t>{2, 512, 2, 2}));
  sn::Classifier small(sn::ClassifierOptions().arch("resnet10").stem(sn::Stem::kSmall).in_channels(1).width(8)
                           .num_classes(10));
  auto out = small->forward(torch::randn({3, 1, 28, 28}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{3, 10}));
  EXPECT_EQ(out.head_logits.size(), 4u);
  EXPECT_EQ(small->feature_dim(), 64);
  EXPECT_EQ(small->forward_features(torch::randn({3, 1, 28, 28})).sizes(), (std::vector<int64_t>{3, 64, 4, 4}));
}

TEST(ResNet, UnknownArchitectureIsNamed) {
  try {
    sn::resnet_options("resnet51");
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("resnet51"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("resnet50"), std::string::npos);
  }
}

TEST(ResNet, LoadStateReportsMismatchesByName) {
  sn::Classifier a(sn::ClassifierOptions().arch("resnet10").width(8).num_classes(5));
  sn::Classifier b(sn::ClassifierOptions().arch("resnet10").width(8).num_classes(6));
  std::map<std::string, torch::Tensor> state;
  for (auto& [n, t] : sn::named_state(*a)) state[n] = t;
  state["bogus.weight"] = torch::zeros({1});
  state.erase("conv1.weight");
  auto mismatch = sn::load_state(*b, state);
  EXPECT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.missing, std::vector<std::string>{"conv1.weight"});
  EXPECT_EQ(mismatch.unexpected, std::vector<std::string>{"bogus.weight"});
  EXPECT_EQ(mismatch.wrong_shape.size(), 8u);  // fc.{0..3}.weight and .bias
  EXPECT_NE(mismatch.describe().find("fc.0.weight"), std::string::npos);
}

// clone() gives an independent copy of every module of ours (the reset() overrides), for each head.
TEST(Classifier, CloneIsAnIndependentCopyForEveryHead) {
  namespace sn = splitshare::nn;
  for (auto kind : {sn::HeadKind::kLinear, sn::HeadKind::kSSM, sn::HeadKind::kKFC}) {
    SCOPED_TRACE(sn::to_string(kind));
    torch::manual_seed(0);
    auto model = sn::make_classifier(sn::ClassifierOptions()
                                         .arch("resnet10")
                                         .width(8)
                                         .stem(sn::Stem::kSmall)
                                         .in_channels(1)
                                         .num_classes(5)
                                         .head(sn::HeadOptions().kind(kind)));
    model->train();
    model->forward(torch::randn({6, 1, 28, 28}));  // running statistics away from their defaults
    auto copy = std::dynamic_pointer_cast<sn::ClassifierImpl>(model->clone());
    ASSERT_TRUE(copy);
    const auto original = model->named_parameters(), cloned = copy->named_parameters();
    ASSERT_EQ(original.size(), cloned.size());
    for (const auto& p : original) {
      ASSERT_TRUE(cloned.contains(p.key())) << p.key();
      EXPECT_TRUE(torch::equal(p.value(), cloned[p.key()])) << p.key();
      EXPECT_NE(p.value().data_ptr(), cloned[p.key()].data_ptr()) << p.key();
    }
    model->eval();
    copy->eval();
    const auto x = torch::randn({3, 1, 28, 28});
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::equal(model->forward(x).logits, copy->forward(x).logits));
    for (auto& p : copy->parameters()) p.add_(1.0);
    EXPECT_FALSE(torch::equal(model->forward(x).logits, copy->forward(x).logits));
  }
}
