// int8 checkpoints (export/quantize.h, checkpoint/quantization.h): calibration writes a record
// beside the float tensors, make_predictor runs it in int8, eval and predict take it, and a
// record that does not fit is refused by name.
#include <splitshare/checkpoint/quantization.h>
#include <splitshare/data/loader.h>
#include <splitshare/export/export.h>
#include <splitshare/export/quantize.h>
#include <splitshare/nn/quantized.h>

#include "cli_support.h"
#include "export_cases.h"
#include "image_writers.h"

namespace {

using namespace splitshare::testing;

// `n` random images normalised as tiny_metadata() says, shuffled in batches of 8.
std::unique_ptr<splitshare::data::BatchStream> images_stream(int64_t n, int64_t channels, int64_t side) {
  torch::manual_seed(3);
  splitshare::data::TensorDataset dataset;
  dataset.images = torch::randint(0, 256, {n, channels, side, side}, torch::kLong).to(torch::kUInt8);
  dataset.labels = torch::zeros({n}, torch::kLong);
  dataset.classes = {"a"};
  return splitshare::data::make_tensor_loader(dataset, std::vector<double>(channels, 0.5),
                                              std::vector<double>(channels, 0.25),
                                              splitshare::data::LoaderOptions().batch_size(8).shuffle(true).seed(2));
}

double relative_error(const torch::Tensor& got, const torch::Tensor& expected) {
  return (got - expected).abs().max().item<double>() / (expected.max() - expected.min()).item<double>();
}

tr::QuantizationRecord record_of(size_t points) {
  tr::QuantizationRecord r;
  for (size_t i = 0; i < points; ++i) r.ranges.emplace_back(-1.0 - i, 2.0 + 0.5 * i);
  r.images = 64;
  r.data = "imagefolder:/photos";
  return r;
}

}  // namespace

TEST(Quantize, RecordRoundTripsAndRefusesBadFieldsByName) {
  const auto record = record_of(3);
  const auto back = tr::quantization_from_json(tr::to_json(record), "ck.pt");
  EXPECT_EQ(back.ranges, record.ranges);
  EXPECT_EQ(back.method, "minmax");
  EXPECT_EQ(back.images, 64);
  EXPECT_EQ(back.data, record.data);
  struct Bad {
    std::string field, value, message;
  };
  const std::vector<Bad> bad = {
      {"format", R"("splitshare-checkpoint")", "format must be 'splitshare-int8'"},
      {"version", "2", "version 2 is not one this build reads"},
      {"ranges", "[[2, 1]]", "range 0 must be finite with lo <= hi"},
      {"ranges", "[[0, 1], [0]]", "range 1 must be [lo, hi]"},
      {"ranges", "[]", "ranges must be a non-empty array"},
      {"calibration", R"({"method": "minmax", "images": "64", "data": ""})", "an integer image count"},
  };
  for (const auto& b : bad) {
    SCOPED_TRACE(b.field + " = " + b.value);
    auto j = tr::to_json(record);
    j[b.field] = nlohmann::json::parse(b.value);
    const auto message = expect_error([&] { tr::quantization_from_json(j, "ck.pt"); });
    EXPECT_TRUE(contains(message, "ck.pt")) << message;
    EXPECT_TRUE(contains(message, b.message)) << message;
  }
  auto j = tr::to_json(record);
  j.erase("ranges");
  EXPECT_TRUE(contains(expect_error([&] { tr::quantization_from_json(j, "ck.pt"); }), "has no 'ranges' field"));
}

TEST(Quantize, CheckpointKeepsItsTensorsAndRunsInInt8) {
  if (!sn::quantized_conv_available()) GTEST_SKIP() << "libtorch without oneDNN's int8 convolutions";
  TempDir dir;
  for (const auto& c : std::vector<Case>{{"resnet10", heads()[1], sn::Stem::kSmall, 8, 16},
                                         {"resnet50", heads()[3], sn::Stem::kImageNet, 4, 32}}) {
    SCOPED_TRACE(c.name());
    auto model = randomised(c, 7);
    const auto ck = dir.file(c.name() + ".pt"), out = dir.file(c.name() + "-int8.pt");
    tr::save_checkpoint(*model, metadata_of(model->options, c.size), ck);
    auto stream = images_stream(48, 3, c.size);
    const auto summary = tr::quantize_checkpoint(ck, *stream, out, tr::QuantizeOptions().images(32).check_images(16));
    EXPECT_EQ(summary.record.images, 32);
    EXPECT_EQ(summary.checked, 16);
    EXPECT_GE(summary.agreement, 0.75);
    EXPECT_LT(summary.max_relative_difference, 0.2);
    // The float tensors are the checkpoint's, unchanged; the record is what was calibrated.
    const auto before = tr::read_archive_tensors(ck), after = tr::read_archive_tensors(out);
    ASSERT_EQ(before.size(), after.size());
    for (const auto& [name, tensor] : before) EXPECT_TRUE(tensor.equal(after.at(name))) << name;
    ASSERT_TRUE(tr::read_quantization(out).has_value());
    EXPECT_EQ(tr::read_quantization(out)->ranges, summary.record.ranges);
    EXPECT_FALSE(tr::read_quantization(ck).has_value());

    auto check = images_stream(8, 3, c.size);
    check->reset(0);
    const auto images = check->next()->images;
    const auto float_logits = sn::InferenceModel(*model).forward(images).logits;
    const auto int8 = tr::make_predictor(tr::load_checkpoint(out));
    ASSERT_NE(dynamic_cast<const sn::QuantizedModel*>(int8.get()), nullptr);
    const auto int8_logits = int8->forward(images).logits;
    EXPECT_LT(relative_error(int8_logits, float_logits), 0.1);
    EXPECT_FALSE(int8_logits.equal(float_logits));
    const auto plain = tr::make_predictor(tr::load_checkpoint(ck));
    ASSERT_NE(dynamic_cast<const sn::InferenceModel*>(plain.get()), nullptr);
    EXPECT_TRUE(torch::allclose(plain->forward(images).logits, float_logits, 1e-5, 1e-5));
  }
}

TEST(Quantize, RecordThatDoesNotFitTheModelIsRefusedByName) {
  if (!sn::quantized_conv_available()) GTEST_SKIP() << "libtorch without oneDNN's int8 convolutions";
  TempDir dir;
  auto model = randomised({"resnet10", heads()[0], sn::Stem::kSmall, 8, 8}, 1);
  const auto ck = dir.file("edited.pt");
  tr::save_checkpoint(*model, metadata_of(model->options, 8), ck,
                      {{tr::kQuantizationFile, tr::to_json(record_of(5)).dump()}});
  const auto message = expect_error([&] { tr::make_predictor(tr::load_checkpoint(ck)); });
  EXPECT_TRUE(contains(message, ck)) << message;
  EXPECT_TRUE(contains(message, "holds 5 activation ranges but the model has")) << message;
  tr::save_checkpoint(*model, metadata_of(model->options, 8), ck, {{tr::kQuantizationFile, "{not json"}});
  EXPECT_TRUE(contains(expect_error([&] { tr::load_checkpoint(ck); }), "quantization.json is not valid JSON"));
}

TEST(Quantize, EvalAndPredictRunTheInt8CheckpointFromTheCli) {
  if (!sn::quantized_conv_available()) GTEST_SKIP() << "libtorch without oneDNN's int8 convolutions";
  TempDir dir;
  write_tiny_mnist(dir.path() / "mnist", 10);
  auto metadata = tiny_metadata();  // with mnist's 10 classes
  metadata.model.num_classes(10);
  metadata.classes.clear();
  const auto ck = tiny_checkpoint(dir, "ck.pt", metadata);
  const auto q = dir.file("ck-int8.pt");
  const auto data = " --data mnist:" + dir.file("mnist");
  auto result = run_cli("quantize --checkpoint " + ck + " --calibrate mnist:" + dir.file("mnist") + " --out " + q +
                        " --calibration-images 6 --check-images 4 --no-progress --json");
  ASSERT_EQ(result.status, 0) << result.output;
  const auto report = nlohmann::json::parse(result.output.substr(result.output.find('{')));
  EXPECT_EQ(report["quantization"]["calibration"]["images"], 6);
  EXPECT_EQ(report["quantization"]["calibration"]["data"], "mnist:" + dir.file("mnist"));
  EXPECT_EQ(report["checked"], 4);

  const auto int8 = run_cli("eval --json --checkpoint " + q + data);
  ASSERT_EQ(int8.status, 0) << int8.output;
  EXPECT_TRUE(contains(int8.output, "runs in int8")) << int8.output;
  const auto fp32 = run_cli("eval --json --checkpoint " + ck + data);
  ASSERT_EQ(fp32.status, 0) << fp32.output;
  const auto loss = [](const std::string& out) {
    return nlohmann::json::parse(out.substr(out.find('{')))["loss"].get<double>();
  };
  // The int8 model's loss: near the float one's, and not it (eval really ran int8).
  EXPECT_NE(loss(int8.output), loss(fp32.output));
  EXPECT_NEAR(loss(int8.output), loss(fp32.output), 0.1 * loss(fp32.output));

  const auto info = run_cli("info --json --checkpoint " + q);
  ASSERT_EQ(info.status, 0) << info.output;
  EXPECT_EQ(nlohmann::json::parse(info.output)["quantization"]["calibration"]["images"], 6);

  write_file(dir.file("a.png"), encode_png(test_picture(1, 8, 8, 1)));
  const auto predicted = run_cli("predict --json --checkpoint " + q + " " + dir.file("a.png"));
  ASSERT_EQ(predicted.status, 0) << predicted.output;
  EXPECT_TRUE(contains(predicted.output, "runs in int8")) << predicted.output;
  expect_cli_refusal("eval --checkpoint " + q + data + " --amp fp32",
                     {"is an int8 checkpoint", "--amp fp32 applies to float checkpoints"});
  expect_cli_refusal("quantize --checkpoint " + ck + " --out " + ck + " --calibrate mnist:" + dir.file("mnist"),
                     {"is the checkpoint", "itself"});
  expect_cli_refusal("export --checkpoint " + q + " --out " + dir.file("q.ts"),
                     {"is an int8 checkpoint", "export it as ONNX"});
  expect_cli_refusal("quantize --checkpoint " + ck + " --out " + q + " --calibration-images 0",
                     {"--calibration-images must be positive, got 0"});
}

TEST(Quantize, QdqOnnxRunsOnOnnxRuntimesInt8KernelsAndAgreesWithEval) {
  if (!sn::quantized_conv_available()) GTEST_SKIP() << "libtorch without oneDNN's int8 convolutions";
  if (!have_onnx()) GTEST_SKIP() << "no onnx/onnxruntime in the venv (scripts/setup)";
  // A known limit, stated in docs/platform.md: our int8 logits are then further from the float ones.
  if (sn::int8_pairs_saturate()) GTEST_SKIP() << "this CPU's int8 convolutions add pairs of products in 16 bits";
  TempDir dir;
  nlohmann::json specs = nlohmann::json::array();
  std::map<std::string, std::pair<torch::Tensor, size_t>> want;  // int8 logits, convolutions
  for (const auto& c : std::vector<Case>{{"resnet10", heads()[1], sn::Stem::kSmall, 8, 16},
                                         {"resnet50", heads()[3], sn::Stem::kImageNet, 4, 32}}) {
    auto model = randomised(c, 9);
    const auto ck = dir.file(c.name() + ".pt"), q = dir.file(c.name() + "-int8.pt");
    tr::save_checkpoint(*model, metadata_of(model->options, c.size), ck);
    auto stream = images_stream(40, 3, c.size);
    tr::quantize_checkpoint(ck, *stream, q, tr::QuantizeOptions().images(32).check_images(0));
    const auto onnx = dir.file(c.name() + "-int8.onnx");
    const auto summary = tr::export_onnx(q, onnx);
    EXPECT_GE(summary.max_difference, 0);  // checked against the int8 model before writing
    stream->reset(0);
    const auto x = stream->next()->images;
    write_floats(dir.file(c.name() + ".bin"), x);
    const auto int8 = tr::make_predictor(tr::load_checkpoint(q));
    const auto convs = dynamic_cast<const sn::QuantizedModel&>(*int8).weights().size();
    want[c.name()] = {int8->forward(x).logits, convs};
    specs.push_back({{"key", c.name()}, {"file", onnx}, {"input", dir.file(c.name() + ".bin")},
                     {"shape", x.sizes().vec()}});
  }
  const std::string script =
      "import json, sys, numpy, onnx, onnxruntime as ort\n"
      "out = {}\n"
      "for spec in json.load(open(sys.argv[1])):\n"
      "    onnx.checker.check_model(spec['file'], full_check=True)\n"
      "    o = ort.SessionOptions()\n"
      "    o.optimized_model_filepath = spec['file'] + '.optimized.onnx'\n"
      "    s = ort.InferenceSession(spec['file'], o, providers=['CPUExecutionProvider'])\n"
      "    x = numpy.fromfile(spec['input'], dtype=numpy.float32).reshape(spec['shape'])\n"
      "    logits, = s.run(['logits'], {'input': x})\n"
      "    ops = [n.op_type for n in onnx.load(o.optimized_model_filepath).graph.node]\n"
      "    out[spec['key']] = {'logits': logits.flatten().tolist(), 'shape': list(logits.shape),\n"
      "        'qlinear_conv': ops.count('QLinearConv'), 'float_conv': ops.count('Conv') + ops.count('FusedConv'),\n"
      "        'meta': s.get_modelmeta().custom_metadata_map}\n"
      "print('RESULT ' + json.dumps(out))\n";
  const auto got = run_python_specs(dir, "run_int8_onnx", script, specs);
  for (const auto& [name, expected] : want) {
    SCOPED_TRACE(name);
    const auto& r = got.at(name);
    // ONNX Runtime fused every convolution into its int8 kernel: none is left in float.
    EXPECT_EQ(r["qlinear_conv"].get<size_t>(), expected.second);
    EXPECT_EQ(r["float_conv"], 0);
    const auto logits = from_json(r["logits"], r["shape"]);
    EXPECT_LT(relative_error(logits, expected.first), 0.03);
    EXPECT_GE(logits.argmax(1).eq(expected.first.argmax(1)).sum().item<int64_t>(), logits.size(0) - 1);
    EXPECT_EQ(nlohmann::json::parse(r["meta"]["quantization"].get<std::string>())["format"], "splitshare-int8");
  }
}
