// `splitshare export --format torchscript`: the exported file runs with plain torch::jit::load
// and Python's torch.jit.load and gives the eval-mode model's logits and head logits, for
// every block type, stem and head, with BatchNorm folded and only standard aten operators.
#include <splitshare/data/loader.h>
#include <splitshare/nn/inference.h>
#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/export/export.h>
#include <splitshare/train/fit.h>

#include <nlohmann/json.hpp>
#include <torch/script.h>

#include "support.h"
#include "export_cases.h"
#include "tiny_models.h"

namespace sn = splitshare::nn;
namespace tr = splitshare::train;
namespace sd = splitshare::data;
using splitshare::testing::expect_close;
using splitshare::testing::expect_error;
using splitshare::testing::run_command;
using splitshare::testing::TempDir;

namespace {

const std::string kCli = SPLITSHARE_CLI;
using splitshare::testing::Case;
using splitshare::testing::cases;
using splitshare::testing::eval_forward;
using splitshare::testing::expect_matches;
using splitshare::testing::from_json;
using splitshare::testing::heads;
using splitshare::testing::kTolerance;
using splitshare::testing::metadata_of;
using splitshare::testing::randomised;
using splitshare::testing::write_floats;

// The exported module's answer: logits [N, K], head_logits [S, N, K].
std::pair<torch::Tensor, torch::Tensor> run_exported(torch::jit::Module& module, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  auto out = module.forward({x}).toTuple();
  return {out->elements()[0].toTensor(), out->elements()[1].toTensor()};
}

// Every operator of the exported forward is aten:: or prim::, none is a oneDNN or BatchNorm one.
void expect_plain_graph(torch::jit::Module& module) {
  auto graph = module.get_method("forward").graph();
  int64_t convolutions = 0;
  for (const auto* node : graph->nodes()) {
    const std::string kind = node->kind().toQualString();
    EXPECT_TRUE(node->kind().is_aten() || node->kind().is_prim()) << kind;
    EXPECT_EQ(kind.find("mkldnn"), std::string::npos) << kind;
    EXPECT_EQ(kind.find("batch_norm"), std::string::npos) << kind;
    convolutions += kind == "aten::conv2d";
  }
  EXPECT_GT(convolutions, 0);
}

// Runs each exported file with Python's plain torch.jit.load (no splitshare on the path).
nlohmann::json run_in_python(const TempDir& dir, const nlohmann::json& specs) {
  const std::string script =
      "import json, sys, numpy, torch\n"
      "torch.set_grad_enabled(False)\n"
      "out = {}\n"
      "for spec in json.load(open(sys.argv[1])):\n"
      "    files = {'splitshare.json': ''}\n"
      "    m = torch.jit.load(spec['file'], _extra_files=files)\n"
      "    x = torch.from_numpy(numpy.fromfile(spec['input'], dtype=numpy.float32)).reshape(spec['shape'])\n"
      "    logits, heads = m(x)\n"
      "    out[spec['file']] = {'logits': logits.flatten().tolist(), 'logits_shape': list(logits.shape),\n"
      "                         'heads': heads.flatten().tolist(), 'heads_shape': list(heads.shape),\n"
      "                         'classes': list(m.classes), 'meta': json.loads(files['splitshare.json'])}\n"
      "print('RESULT ' + json.dumps(out))\n";
  return splitshare::testing::run_python_specs(dir, "run", script, specs);
}

}  // namespace

TEST(Export, CppLoadGivesTheEvalModelsLogitsForEveryArchAndHead) {
  TempDir dir;
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.name());
    auto model = randomised(c, 3);
    tr::save_checkpoint(*model, metadata_of(model->options, c.size), dir.file(c.name() + ".pt"));
    const auto summary = tr::export_torchscript(dir.file(c.name() + ".pt"), dir.file(c.name() + ".ts"));
    EXPECT_GE(summary.max_difference, 0);
    EXPECT_LT(summary.max_difference, kTolerance);

    const auto x = torch::randn({3, 3, c.size, c.size});
    const auto want = eval_forward(*model, x);
    auto module = torch::jit::load(dir.file(c.name() + ".ts"));
    const auto [logits, head_logits] = run_exported(module, x);
    const int64_t splits = sn::head_count(c.head);
    EXPECT_EQ(head_logits.sizes(), (std::vector<int64_t>{splits, 3, 5}));
    expect_matches(logits, head_logits, want);
    // predict's path (the fused, folded model) agrees too.
    const auto fused = sn::InferenceModel(*model).forward(x);
    expect_close(logits, fused.logits, kTolerance);
    expect_plain_graph(module);
    // Another batch size: nothing in the graph is fixed to the first one.
    const auto one = torch::randn({1, 3, c.size, c.size});
    const auto [logits1, heads1] = run_exported(module, one);
    expect_matches(logits1, heads1, eval_forward(*model, one));
  }
}

TEST(Export, GatedModelsModuleGivesEvalsLogits) {
  TempDir dir;
  for (const auto& c : splitshare::testing::gate_cases()) {
    SCOPED_TRACE(c.name());
    auto model = splitshare::testing::gated(c, 13);
    const auto file = dir.file(c.name() + ".ts");
    const auto summary = tr::export_torchscript(*model, metadata_of(model->options, c.model.size), file);
    EXPECT_LT(summary.max_difference, kTolerance);
    auto module = torch::jit::load(file);
    const auto x = torch::randn({5, 3, c.model.size, c.model.size});
    const auto [logits, head_logits] = run_exported(module, x);
    const auto want = eval_forward(*model, x);
    expect_matches(logits, head_logits, want);
    expect_close(logits, sn::InferenceModel(*model).forward(x).logits, kTolerance);
    EXPECT_GT((logits - want.ungated).abs().max().item<double>(), 1e-2);
    EXPECT_EQ(module.attr("gate").toModule().attr("fc1").toModule().attr("weight").toTensor().size(0),
              c.hidden ? c.hidden : sn::head_count(c.model.head));
    expect_plain_graph(module);
  }
}

TEST(Export, FoldingIsWhatMakesItMatch) {
  // The same file with BatchNorm statistics left out would not match: the test can fail.
  TempDir dir;
  const Case c{"resnet10", heads()[1], sn::Stem::kSmall, 8, 8};
  auto model = randomised(c, 4);
  tr::export_torchscript(*model, metadata_of(model->options, c.size), dir.file("m.ts"));
  const auto x = torch::randn({2, 3, 8, 8});
  auto module = torch::jit::load(dir.file("m.ts"));
  const auto [logits, heads] = run_exported(module, x);
  {
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_buffers()) {
      if (item.key().find("running_var") != std::string::npos) item.value().fill_(1.0);
    }
  }
  EXPECT_GT((logits - eval_forward(*model, x).logits).abs().max().item<double>(), 1e-2);
}

TEST(Export, PythonTorchJitLoadGivesTheSameLogits) {
  if (!splitshare::testing::have_python_torch()) GTEST_SKIP() << "no Python with torch (scripts/setup)";
  TempDir dir;
  nlohmann::json specs = nlohmann::json::array();
  std::map<std::string, sn::HeadOutput> want;
  // Each architecture once and each head once (the C++ test covers every pair; Python runs
  // the same TorchScript interpreter, what it adds is the plain torch.jit.load).
  const auto all = cases();
  for (size_t i = 0; i < all.size(); i += 5) {
    const auto& c = all[i];
    auto model = randomised(c, 5);
    const auto file = dir.file(c.name() + ".ts");
    tr::export_torchscript(*model, metadata_of(model->options, c.size), file);
    const auto x = torch::randn({2, 3, c.size, c.size});
    write_floats(dir.file(c.name() + ".bin"), x);
    specs.push_back({{"file", file}, {"input", dir.file(c.name() + ".bin")}, {"shape", x.sizes().vec()}});
    want[file] = eval_forward(*model, x);
  }
  const auto got = run_in_python(dir, specs);
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [file, out] : want) {
    SCOPED_TRACE(file);
    const auto& r = got.at(file);
    expect_matches(from_json(r["logits"], r["logits_shape"]), from_json(r["heads"], r["heads_shape"]), out);
    EXPECT_EQ(r["classes"].size(), 5u);
    EXPECT_EQ(r["classes"][4], "class 4");
    EXPECT_EQ(r["meta"]["format"], tr::kExportFormat);
  }
}

TEST(Export, TrainedCheckpointAndBestThroughTheCli) {
  TempDir dir;
  const auto classes = splitshare::testing::train_tiny_run(dir);
  const auto x = torch::randn({4, 1, 16, 16});
  write_floats(dir.file("x.bin"), x);
  nlohmann::json specs = nlohmann::json::array();
  std::map<std::string, sn::HeadOutput> want;
  for (const std::string name : {"checkpoint", "best"}) {
    SCOPED_TRACE(name);
    const auto checkpoint = dir.file(name + ".pt");
    const auto out = dir.file("export/" + name + ".ts");
    std::string output;
    ASSERT_EQ(run_command(kCli + " export --checkpoint " + checkpoint + " --format torchscript --out " + out, &output), 0)
        << output;
    EXPECT_NE(output.find("wrote " + out), std::string::npos) << output;

    auto loaded = tr::load_checkpoint(checkpoint);
    loaded.model->eval();
    torch::jit::ExtraFilesMap extra{{tr::kExportMetadataFile, ""}};
    auto module = torch::jit::load(out, torch::kCPU, extra);
    const auto [logits, heads] = run_exported(module, x);
    want[out] = eval_forward(*loaded.model, x);
    specs.push_back({{"file", out}, {"input", dir.file("x.bin")}, {"shape", x.sizes().vec()}});
    expect_matches(logits, heads, want[out]);
    expect_close(logits, sn::InferenceModel(*loaded.model).forward(x).logits, kTolerance);

    // The checkpoint's metadata rides along, marked as an export.
    const auto json = nlohmann::json::parse(extra[tr::kExportMetadataFile]);
    EXPECT_EQ(json["format"], tr::kExportFormat);
    EXPECT_EQ(json["classes"], nlohmann::json(classes));
    EXPECT_EQ(json["arch"], "resnet10");
    EXPECT_EQ(json["head"], "ssm");
    EXPECT_EQ(json["splits"], 4);
    EXPECT_EQ(json["preprocess"], tr::to_json(loaded.metadata)["preprocess"]);
    EXPECT_EQ(json["epoch"], loaded.metadata.epoch);
    const auto classes = module.attr("classes").toListRef();
    ASSERT_EQ(classes.size(), 3u);
    EXPECT_EQ(classes[2].toStringRef(), "cat");
    // An export is not a checkpoint, and says so.
    EXPECT_NE(expect_error([&] { tr::load_checkpoint(out); }).find("not a splitshare checkpoint"), std::string::npos);
  }
  if (!splitshare::testing::have_python_torch()) return;
  const auto got = run_in_python(dir, specs);
  ASSERT_EQ(got.size(), 2u);
  for (const auto& [file, out] : want) {
    SCOPED_TRACE(file);
    const auto& r = got.at(file);
    expect_matches(from_json(r["logits"], r["logits_shape"]), from_json(r["heads"], r["heads_shape"]), out);
    EXPECT_EQ(r["classes"], nlohmann::json(classes));
  }
}

TEST(Export, RefusesBadInputByName) {
  TempDir dir;
  auto model = randomised({"resnet10", heads()[0], sn::Stem::kSmall, 8, 8}, 6);
  tr::save_checkpoint(*model, metadata_of(model->options, 8), dir.file("ck.pt"));
  splitshare::testing::write_file(dir.file("notes.txt"), "not a checkpoint");
  tr::export_torchscript(dir.file("ck.pt"), dir.file("m.ts"));
  struct Refusal {
    std::string args, message;
  };
  const std::vector<Refusal> refusals = {
      {"--checkpoint " + dir.file("ck.pt") + " --format tflite --out " + dir.file("m.x"), "unknown --format 'tflite' (expected onnx or torchscript)"},
      {"--checkpoint " + dir.file("missing.pt") + " --out " + dir.file("x.ts"), "checkpoint not found: " + dir.file("missing.pt")},
      {"--checkpoint " + dir.file("notes.txt") + " --out " + dir.file("x.ts"), dir.file("notes.txt") + ": not a readable torch archive"},
      {"--checkpoint " + dir.file("m.ts") + " --out " + dir.file("x.ts"), "not a splitshare checkpoint (format 'splitshare-torchscript'"},
      {"--checkpoint " + dir.file("ck.pt") + " --out " + dir.file("ck.pt"), "is the checkpoint"},
      {"--checkpoint " + dir.file("ck.pt"), "--out is required"},
  };
  for (const auto& r : refusals) {
    SCOPED_TRACE(r.args);
    std::string output;
    EXPECT_NE(run_command(kCli + " export " + r.args, &output), 0);
    EXPECT_NE(output.find(r.message), std::string::npos) << output;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.ts")));
  // The refused overwrite left the checkpoint as it was.
  EXPECT_NO_THROW(tr::load_checkpoint(dir.file("ck.pt")));
}
