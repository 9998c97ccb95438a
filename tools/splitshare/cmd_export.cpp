#include "splitshare/commands.h"
#include "splitshare/common.h"

#include <splitshare/train/export.h>

#include <cstdio>

namespace splitshare::cli {

int run_export(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "Write a checkpoint as a self-contained TorchScript file (BatchNorm folded, standard aten\n"
                           "operators only) that runs without splitshare:\n"
                           "  Python: logits, head_logits = torch.jit.load(\"model.ts\")(x)\n"
                           "  C++:    torch::jit::load(\"model.ts\").forward({x})");
  const train::ExportOptions defaults;
  options.add_options()
      ("checkpoint", "checkpoint to export (checkpoint.pt, best.pt or an import)", cxxopts::value<std::string>())
      ("format", "torchscript (onnx: not built yet, issue #18)", cxxopts::value<std::string>()->default_value("torchscript"))
      ("out", "file to write", cxxopts::value<std::string>())
      ("no-verify", "skip running the exported module against the folded model before writing")
      ("seed", "seed of the random images of that check", cxxopts::value<uint64_t>()->default_value(text(defaults.seed())))
      ("json", "print a JSON report");
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  const auto format = (*args)["format"].as<std::string>();
  TORCH_CHECK(format != "onnx", "ONNX export is not built yet (issue #18); use --format torchscript");
  TORCH_CHECK(format == "torchscript", "unknown --format '", format, "' (expected torchscript)");
  TORCH_CHECK(args->count("checkpoint"), "--checkpoint is required");
  TORCH_CHECK(args->count("out"), "--out is required");
  const auto checkpoint = (*args)["checkpoint"].as<std::string>();
  const auto out = (*args)["out"].as<std::string>();
  const auto summary = train::export_torchscript(
      checkpoint, out, train::ExportOptions().verify(!args->count("no-verify")).seed((*args)["seed"].as<uint64_t>()));
  if (args->count("json")) {
    const nlohmann::json report{{"checkpoint", checkpoint},
                                {"out", out},
                                {"format", format},
                                {"tensors", summary.tensors},
                                {"verified", summary.max_difference >= 0},
                                {"max_difference", summary.max_difference},
                                {"image_size", summary.image_size}};
    std::printf("%s\n", report.dump(2).c_str());
  } else if (summary.max_difference >= 0) {
    std::printf("wrote %s (%lld tensors; checked on random %lldx%lld images: largest logit difference from the folded "
                "model %.2g)\n",
                out.c_str(), static_cast<long long>(summary.tensors), static_cast<long long>(summary.image_size),
                static_cast<long long>(summary.image_size), summary.max_difference);
  } else {
    std::printf("wrote %s (%lld tensors; not verified)\n", out.c_str(), static_cast<long long>(summary.tensors));
  }
  return 0;
}

}  // namespace splitshare::cli
