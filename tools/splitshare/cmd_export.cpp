#include "splitshare/commands.h"
#include "splitshare/options.h"

#include <splitshare/export/export.h>

#include <cstdio>
#include <filesystem>

namespace splitshare::cli {

namespace {

// --format, or the extension of --out (.onnx -> onnx, anything else -> torchscript).
std::string export_format(const cxxopts::ParseResult& args, const std::string& out) {
  if (args.count("format")) {
    const auto format = args["format"].as<std::string>();
    TORCH_CHECK(format == "onnx" || format == "torchscript", "unknown --format '", format,
                "' (expected onnx or torchscript)");
    return format;
  }
  const auto ext = std::filesystem::path(out).extension().string();
  return ext == ".onnx" ? "onnx" : "torchscript";
}

void print_summary(const cxxopts::ParseResult& args, const std::string& checkpoint, const std::string& out,
                   const std::string& format, const std::string& what, const train::ExportSummary& summary) {
  if (args.count("json")) {
    const nlohmann::json report{{"checkpoint", checkpoint},
                                {"out", out},
                                {"format", format},
                                {"tensors", summary.tensors},
                                {"verified", summary.max_difference >= 0},
                                {"max_difference", summary.max_difference},
                                {"image_size", summary.image_size}};
    std::printf("%s\n", report.dump(2).c_str());
  } else if (summary.max_difference >= 0) {
    std::printf("wrote %s (%s, %lld tensors; checked on random %lldx%lld images: largest logit difference from the "
                "folded model %.2g)\n",
                out.c_str(), what.c_str(), static_cast<long long>(summary.tensors),
                static_cast<long long>(summary.image_size), static_cast<long long>(summary.image_size),
                summary.max_difference);
  } else {
    std::printf("wrote %s (%s, %lld tensors; not verified)\n", out.c_str(), what.c_str(),
                static_cast<long long>(summary.tensors));
  }
}

}  // namespace

int run_export(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "Write a checkpoint as a self-contained file that runs without splitshare (BatchNorm\n"
                           "folded; outputs logits [N, K] and head_logits [S, N, K]):\n"
                           "  ONNX:        onnxruntime.InferenceSession(\"model.onnx\").run(None, {\"input\": x})\n"
                           "  TorchScript: logits, head_logits = torch.jit.load(\"model.ts\")(x)\n"
                           "               torch::jit::load(\"model.ts\").forward({x})   (C++)");
  const train::ExportOptions defaults;
  const train::OnnxOptions onnx_defaults;
  options.add_options()
      ("checkpoint", "checkpoint to export (checkpoint.pt, best.pt or an import)", cxxopts::value<std::string>())
      ("format", "onnx or torchscript (default: onnx when --out ends in .onnx, else torchscript)",
       cxxopts::value<std::string>())
      ("out", "file to write", cxxopts::value<std::string>())
      ("opset", "ONNX opset, " + text(train::kOnnxMinOpset) + " to " + text(train::kOnnxMaxOpset),
       number<int64_t>()->default_value(text(onnx_defaults.opset())))
      ("fixed-batch", "ONNX: fix the batch dimension to N (default: dynamic)", number<int64_t>())
      ("no-verify", "skip running the exported model against the folded model before writing")
      ("seed", "seed of the random images of that check", number<uint64_t>()->default_value(text(defaults.seed())))
      ("json", "print a JSON report");
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  TORCH_CHECK(args->count("checkpoint"), "--checkpoint is required");
  TORCH_CHECK(args->count("out"), "--out is required");
  const auto checkpoint = (*args)["checkpoint"].as<std::string>();
  const auto out = (*args)["out"].as<std::string>();
  const auto format = export_format(*args, out);
  const bool verify = !args->count("no-verify");
  const auto seed = (*args)["seed"].as<uint64_t>();
  if (format == "torchscript") {
    TORCH_CHECK(!args->count("opset"), "--opset applies to --format onnx only");
    TORCH_CHECK(!args->count("fixed-batch"), "--fixed-batch applies to --format onnx only");
    const auto summary = train::export_torchscript(checkpoint, out, train::ExportOptions().verify(verify).seed(seed));
    print_summary(*args, checkpoint, out, format, "TorchScript", summary);
    return 0;
  }
  const auto opset = (*args)["opset"].as<int64_t>();
  const auto batch = args->count("fixed-batch") ? (*args)["fixed-batch"].as<int64_t>() : 0;
  TORCH_CHECK(!args->count("fixed-batch") || batch > 0, "ONNX export: --fixed-batch ", batch,
              " must be a positive batch size");
  const auto summary = train::export_onnx(
      checkpoint, out, train::OnnxOptions().opset(opset).fixed_batch(batch).verify(verify).seed(seed));
  print_summary(*args, checkpoint, out, format, "ONNX opset " + text(opset), summary);
  return 0;
}

}  // namespace splitshare::cli
