// python/splitshare_torch.py rebuilds our models in PyTorch from a checkpoint and gives
// the same logits as the C++ model.
#include <splitshare/checkpoint/checkpoint.h>

#include "support.h"

namespace sn = splitshare::nn;
namespace tr = splitshare::train;
using splitshare::testing::TempDir;

namespace {

void check_roundtrip(sn::ClassifierOptions options, int64_t size) {
  if (!splitshare::testing::have_python_torch()) GTEST_SKIP() << "no Python with torch (scripts/setup)";
  TempDir dir;
  torch::manual_seed(5);
  auto model = sn::make_classifier(options);
  // A few training steps so BN statistics and weights are not at their defaults.
  model->train();
  for (int i = 0; i < 3; ++i) model->forward(torch::randn({8, options.in_channels(), size, size}));
  model->eval();
  tr::CheckpointMetadata meta;
  meta.model = options;
  for (int64_t i = 0; i < options.num_classes(); ++i) meta.classes.push_back("c" + std::to_string(i));
  meta.preprocess.channels = options.in_channels();
  meta.preprocess.mean.assign(options.in_channels(), 0.5);
  meta.preprocess.std.assign(options.in_channels(), 0.25);
  tr::save_checkpoint(*model, meta, dir.file("ck.pt"));

  auto x = torch::randn({3, options.in_channels(), size, size});
  torch::NoGradGuard g;
  auto out = model->forward(x);
  // Hand the input to Python as raw float32 bytes.
  auto bytes = std::string(static_cast<const char*>(x.data_ptr()), x.numel() * sizeof(float));
  splitshare::testing::write_file(dir.file("x.bin"), bytes);
  const std::string script =
      "import sys, json, numpy, torch\n"
      "sys.path.insert(0, '" SPLITSHARE_SOURCE_DIR "/python')\n"
      "import splitshare_torch as ss\n"
      "model, meta = ss.load_checkpoint(sys.argv[1])\n"
      "x = torch.from_numpy(numpy.fromfile(sys.argv[2], dtype=numpy.float32)).reshape(" +
      std::to_string(x.size(0)) + ", " + std::to_string(x.size(1)) + ", " + std::to_string(size) + ", " +
      std::to_string(size) + ")\n"
      "with torch.no_grad():\n"
      "    out = model(x)\n"
      "print(json.dumps({'logits': out.logits.tolist(), 'heads': [h.tolist() for h in out.head_logits]}))\n";
  splitshare::testing::write_file(dir.file("roundtrip.py"), script);
  std::string output;
  ASSERT_EQ(splitshare::testing::run_command(std::string(splitshare::testing::python()) + " " +
                                                 dir.file("roundtrip.py") + " " + dir.file("ck.pt") + " " +
                                                 dir.file("x.bin"), &output), 0) << output;
  auto json = nlohmann::json::parse(output.substr(output.find('{')));
  auto to_tensor = [](const nlohmann::json& rows) {
    std::vector<float> flat;
    for (const auto& r : rows) for (const auto& v : r) flat.push_back(v.get<float>());
    return torch::tensor(flat).reshape({static_cast<int64_t>(rows.size()), -1});
  };
  splitshare::testing::expect_close(to_tensor(json["logits"]), out.logits, 1e-4, 1e-4);
  ASSERT_EQ(json["heads"].size(), out.head_logits.size());
  for (size_t h = 0; h < out.head_logits.size(); ++h) {
    splitshare::testing::expect_close(to_tensor(json["heads"][h]), out.head_logits[h], 1e-4, 1e-4);
  }
}

}  // namespace

TEST(PythonInterop, SmallSsmModelRoundTrips) {
  check_roundtrip(sn::ClassifierOptions().arch("resnet10").width(8).in_channels(1).stem(sn::Stem::kSmall)
                      .num_classes(10).head(sn::HeadOptions().kind(sn::HeadKind::kSSM)), 28);
}

TEST(PythonInterop, LastPlainAndKfcHeadsRoundTrip) {
  check_roundtrip(sn::ClassifierOptions().arch("resnet10").width(8).in_channels(3).stem(sn::Stem::kSmall)
                      .num_classes(5).head(sn::HeadOptions().kind(sn::HeadKind::kSSM).last_plain(true)), 32);
  check_roundtrip(sn::ClassifierOptions().arch("resnext50_32x4d").width(32).num_classes(7)
                      .head(sn::HeadOptions().kind(sn::HeadKind::kKFC).k(3)), 64);
}
