// `splitshare export --format onnx`: the file passes onnx.checker with full checking and ONNX
// Runtime gives predict's logits and head logits, for every architecture and head, random and
// trained weights, every supported opset, a dynamic or fixed batch.
#include <splitshare/nn/inference.h>
#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/export/export.h>
#include <splitshare/train/fit.h>

#include <nlohmann/json.hpp>

#include "export_cases.h"
#include "support.h"
#include "tiny_models.h"

#include <algorithm>
#include <map>

namespace sn = splitshare::nn;
namespace tr = splitshare::train;
using splitshare::testing::cases;
using splitshare::testing::eval_forward;
using splitshare::testing::expect_error;
using splitshare::testing::expect_matches;
using splitshare::testing::from_json;
using splitshare::testing::have_onnx;
using splitshare::testing::heads;
using splitshare::testing::kTolerance;
using splitshare::testing::metadata_of;
using splitshare::testing::randomised;
using splitshare::testing::run_command;
using splitshare::testing::TempDir;
using splitshare::testing::write_floats;

namespace {

const std::string kCli = SPLITSHARE_CLI;

// Checks each file with onnx.checker (full_check: strict shape inference too) and runs it with
// ONNX Runtime's CPU provider; returns outputs, metadata and graph facts by file.
nlohmann::json run_onnxruntime(const TempDir& dir, const nlohmann::json& specs) {
  const std::string script =
      "import json, sys, numpy, onnx, onnxruntime as ort\n"
      "out = {}\n"
      "for spec in json.load(open(sys.argv[1])):\n"
      "    onnx.checker.check_model(spec['file'], full_check=True)\n"
      "    model = onnx.load(spec['file'])\n"
      "    s = ort.InferenceSession(spec['file'], providers=['CPUExecutionProvider'])\n"
      "    x = numpy.fromfile(spec['input'], dtype=numpy.float32).reshape(spec['shape'])\n"
      "    logits, heads = s.run(['logits', 'head_logits'], {'input': x})\n"
      "    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]\n"
      "    out[spec['key']] = {'logits': logits.flatten().tolist(), 'logits_shape': list(logits.shape),\n"
      "        'heads': heads.flatten().tolist(), 'heads_shape': list(heads.shape), 'input_dims': dims,\n"
      "        'opset': model.opset_import[0].version, 'ir_version': model.ir_version,\n"
      "        'ops': sorted({n.op_type for n in model.graph.node}),\n"
      "        'meta': s.get_modelmeta().custom_metadata_map}\n"
      "print('RESULT ' + json.dumps(out))\n";
  return splitshare::testing::run_python_specs(dir, "run_onnx", script, specs);
}

// What ONNX Runtime must give: eval's model's outputs and predict's folded model's.
struct Want {
  sn::HeadOutput eval, predict;
};

// ONNX Runtime's logits [N, K] and head logits [S, N, K] in `r`, checked against both of `want`.
std::pair<torch::Tensor, torch::Tensor> expect_runtime_matches(const nlohmann::json& r, const Want& want) {
  auto logits = from_json(r["logits"], r["logits_shape"]);
  auto head_logits = from_json(r["heads"], r["heads_shape"]);
  expect_matches(logits, head_logits, want.eval);
  expect_matches(logits, head_logits, want.predict);
  return {logits, head_logits};
}

}  // namespace

TEST(OnnxExport, GraphMatchesTheModelBeforeWritingForEveryArchAndHead) {
  TempDir dir;
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.name());
    auto model = randomised(c, 3);
    const auto summary = tr::export_onnx(*model, metadata_of(model->options, c.size), dir.file(c.name() + ".onnx"));
    EXPECT_GE(summary.max_difference, 0);
    EXPECT_LT(summary.max_difference, kTolerance);
    EXPECT_EQ(summary.image_size, c.size);
    EXPECT_GT(std::filesystem::file_size(dir.file(c.name() + ".onnx")), 1000u);
  }
}

TEST(OnnxExport, OnnxRuntimeGivesPredictsLogitsForEveryArchAndHead) {
  if (!have_onnx()) GTEST_SKIP() << "no onnx/onnxruntime in the venv (scripts/setup)";
  TempDir dir;
  nlohmann::json specs = nlohmann::json::array();
  std::map<std::string, Want> want;
  std::map<std::string, int64_t> splits;
  for (const auto& c : cases()) {
    auto model = randomised(c, 7);
    const auto file = dir.file(c.name() + ".onnx");
    tr::export_onnx(*model, metadata_of(model->options, c.size), file);
    for (const int64_t batch : {3, 1}) {  // the batch dimension is dynamic
      const auto x = torch::randn({batch, 3, c.size, c.size});
      const auto key = c.name() + "-" + std::to_string(batch);
      write_floats(dir.file(key + ".bin"), x);
      specs.push_back({{"key", key}, {"file", file}, {"input", dir.file(key + ".bin")}, {"shape", x.sizes().vec()}});
      want[key] = {eval_forward(*model, x), sn::InferenceModel(*model).forward(x)};
      splits[key] = sn::head_count(c.head);
    }
  }
  const auto got = run_onnxruntime(dir, specs);
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [key, w] : want) {
    SCOPED_TRACE(key);
    const auto& r = got.at(key);
    EXPECT_EQ(expect_runtime_matches(r, w).second.size(0), splits[key]);
    EXPECT_EQ(r["input_dims"], nlohmann::json::parse(R"(["batch", 3, "height", "width"])"));
    EXPECT_EQ(r["opset"], 17);
    EXPECT_EQ(r["ir_version"], 8);
    for (const auto& op : r["ops"]) EXPECT_NE(op, "BatchNormalization");
    const auto meta = nlohmann::json::parse(r["meta"]["splitshare"].get<std::string>());
    EXPECT_EQ(meta["format"], tr::kOnnxFormat);
    EXPECT_EQ(nlohmann::json::parse(r["meta"]["classes"].get<std::string>())[4], "class 4");
    EXPECT_EQ(nlohmann::json::parse(r["meta"]["preprocess"].get<std::string>())["std"][0], 0.25);
    EXPECT_EQ(nlohmann::json::parse(r["meta"]["head"].get<std::string>())["splits"], meta["splits"]);
  }
}

TEST(OnnxExport, GatedModelsLogitsInOnnxRuntimeEqualEvals) {
  if (!have_onnx()) GTEST_SKIP() << "no onnx/onnxruntime in the venv (scripts/setup)";
  TempDir dir;
  nlohmann::json specs = nlohmann::json::array();
  std::map<std::string, Want> want;
  std::map<std::string, bool> hard;
  for (const auto& c : splitshare::testing::gate_cases()) {
    auto model = splitshare::testing::gated(c, 11);
    for (const int64_t opset : {tr::kOnnxMinOpset, tr::kOnnxMaxOpset}) {
      const auto key = c.name() + "-" + std::to_string(opset);
      const auto file = dir.file(key + ".onnx");
      // The reference evaluator checks the graph against the folded model before writing.
      const auto summary = tr::export_onnx(*model, metadata_of(model->options, c.model.size), file,
                                           tr::OnnxOptions().opset(opset));
      EXPECT_LT(summary.max_difference, kTolerance) << key;
      const auto x = torch::randn({5, 3, c.model.size, c.model.size});
      write_floats(dir.file(key + ".bin"), x);
      specs.push_back({{"key", key}, {"file", file}, {"input", dir.file(key + ".bin")}, {"shape", x.sizes().vec()}});
      want[key] = {eval_forward(*model, x), sn::InferenceModel(*model).forward(x)};
      hard[key] = c.hard;
    }
  }
  const auto got = run_onnxruntime(dir, specs);
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [key, w] : want) {
    SCOPED_TRACE(key);
    const auto& r = got.at(key);
    const auto [logits, head_logits] = expect_runtime_matches(r, w);
    // The gate is in the file: its logits are not the heads' mean.
    EXPECT_GT((logits - head_logits.mean(0)).abs().max().item<double>(), 1e-2);
    const auto ops = r["ops"].get<std::vector<std::string>>();
    EXPECT_NE(std::find(ops.begin(), ops.end(), "Softmax"), ops.end());
    EXPECT_EQ(std::find(ops.begin(), ops.end(), "OneHot") != ops.end(), hard[key]);
    EXPECT_TRUE(nlohmann::json::parse(r["meta"]["splitshare"].get<std::string>()).contains("gate"));
  }
}

TEST(OnnxExport, EveryOpsetAndAFixedBatch) {
  if (!have_onnx()) GTEST_SKIP() << "no onnx/onnxruntime in the venv (scripts/setup)";
  TempDir dir;
  const splitshare::testing::Case c{"resnet18", heads()[2], sn::Stem::kImageNet, 4, 32};
  auto model = randomised(c, 8);
  const auto meta = metadata_of(model->options, c.size);
  const auto x = torch::randn({2, 3, c.size, c.size});
  write_floats(dir.file("x.bin"), x);
  const auto expected = sn::InferenceModel(*model).forward(x);
  nlohmann::json specs = nlohmann::json::array();
  for (int64_t opset = tr::kOnnxMinOpset; opset <= tr::kOnnxMaxOpset; ++opset) {
    const auto file = dir.file("opset" + std::to_string(opset) + ".onnx");
    tr::export_onnx(*model, meta, file, tr::OnnxOptions().opset(opset));
    specs.push_back({{"key", std::to_string(opset)}, {"file", file}, {"input", dir.file("x.bin")}, {"shape", {2, 3, 32, 32}}});
  }
  tr::export_onnx(*model, meta, dir.file("fixed.onnx"), tr::OnnxOptions().fixed_batch(2));
  specs.push_back({{"key", "fixed"}, {"file", dir.file("fixed.onnx")}, {"input", dir.file("x.bin")}, {"shape", {2, 3, 32, 32}}});
  const auto got = run_onnxruntime(dir, specs);
  ASSERT_EQ(got.size(), specs.size());
  for (const auto& [key, r] : got.items()) {
    SCOPED_TRACE(key);
    expect_matches(from_json(r["logits"], r["logits_shape"]), from_json(r["heads"], r["heads_shape"]), expected);
    if (key != "fixed") EXPECT_EQ(r["opset"], std::stoi(key));
  }
  EXPECT_EQ(got["fixed"]["input_dims"], nlohmann::json::parse(R"([2, 3, "height", "width"])"));
  EXPECT_EQ(got["24"]["ir_version"], 12);
  EXPECT_EQ(got["19"]["ir_version"], 9);
}

TEST(OnnxExport, TrainedCheckpointAndBestThroughTheCli) {
  if (!have_onnx()) GTEST_SKIP() << "no onnx/onnxruntime in the venv (scripts/setup)";
  TempDir dir;
  const auto classes = splitshare::testing::train_tiny_run(dir);
  const auto x = torch::randn({4, 1, 16, 16});
  write_floats(dir.file("x.bin"), x);
  nlohmann::json specs = nlohmann::json::array();
  std::map<std::string, sn::HeadOutput> want;
  for (const std::string name : {"checkpoint", "best"}) {
    const auto out = dir.file("export/" + name + ".onnx");
    std::string output;
    ASSERT_EQ(run_command(kCli + " export --checkpoint " + dir.file(name + ".pt") + " --out " + out, &output), 0)
        << output;
    EXPECT_NE(output.find("wrote " + out), std::string::npos) << output;
    EXPECT_NE(output.find("ONNX opset 17"), std::string::npos) << output;  // the format follows the extension
    auto loaded = tr::load_checkpoint(dir.file(name + ".pt"));
    loaded.model->eval();
    want[name] = sn::InferenceModel(*loaded.model).forward(x);
    specs.push_back({{"key", name}, {"file", out}, {"input", dir.file("x.bin")}, {"shape", x.sizes().vec()}});
  }
  const auto got = run_onnxruntime(dir, specs);
  ASSERT_EQ(got.size(), 2u);
  for (const auto& [name, w] : want) {
    SCOPED_TRACE(name);
    const auto& r = got.at(name);
    expect_matches(from_json(r["logits"], r["logits_shape"]), from_json(r["heads"], r["heads_shape"]), w);
    EXPECT_EQ(nlohmann::json::parse(r["meta"]["classes"].get<std::string>()), nlohmann::json(classes));
    EXPECT_EQ(nlohmann::json::parse(r["meta"]["splitshare"].get<std::string>())["arch"], "resnet10");
  }
}

TEST(OnnxExport, RefusesBadOptionsByName) {
  TempDir dir;
  auto model = randomised({"resnet10", heads()[0], sn::Stem::kSmall, 8, 8}, 6);
  tr::save_checkpoint(*model, metadata_of(model->options, 8), dir.file("ck.pt"));
  const auto ck = "--checkpoint " + dir.file("ck.pt");
  struct Refusal {
    std::string args, message;
  };
  const std::vector<Refusal> refusals = {
      {ck + " --out " + dir.file("a.onnx") + " --opset 16", "--opset 16 is not supported (expected 17 to 24)"},
      {ck + " --out " + dir.file("a.onnx") + " --opset 99", "--opset 99 is not supported"},
      {ck + " --out " + dir.file("a.onnx") + " --fixed-batch -2", "--fixed-batch -2 must be a positive batch size"},
      {ck + " --format torchscript --out " + dir.file("a.ts") + " --opset 18", "--opset applies to --format onnx only"},
      {ck + " --out " + dir.file("a.ts") + " --fixed-batch 4", "--fixed-batch applies to --format onnx only"},
      {"--checkpoint " + dir.file("missing.pt") + " --out " + dir.file("a.onnx"), "checkpoint not found: " + dir.file("missing.pt")},
      {ck + " --out " + dir.file("ck.pt") + " --format onnx", "is the checkpoint"},
  };
  for (const auto& r : refusals) {
    SCOPED_TRACE(r.args);
    std::string output;
    EXPECT_NE(run_command(kCli + " export " + r.args, &output), 0);
    EXPECT_NE(output.find(r.message), std::string::npos) << output;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("a.onnx")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("a.ts")));
  EXPECT_NE(expect_error([&] { tr::export_onnx(*model, metadata_of(model->options, 8), dir.file("b.onnx"),
                                                tr::OnnxOptions().opset(12)); })
                .find("--opset 12 is not supported"),
            std::string::npos);
}
