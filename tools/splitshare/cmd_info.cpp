#include "splitshare/commands.h"
#include "splitshare/options.h"

#include <splitshare/checkpoint/checkpoint.h>

#include <cstdio>

namespace splitshare::cli {

int run_info(int argc, char** argv) {
  cxxopts::Options options(argv[0], "Parameter counts of a model (--arch/--head…), or a checkpoint's metadata");
  options.add_options()
      ("checkpoint", "checkpoint file", cxxopts::value<std::string>())
      ("classes", "number of classes", number<int64_t>()->default_value("1000"))
      ("channels", "input channels", number<int64_t>()->default_value("3"))
      ("json", "print JSON");
  add_model_options(options);
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  nlohmann::json out;
  if (args->count("checkpoint")) {
    const auto path = (*args)["checkpoint"].as<std::string>();
    auto loaded = train::load_checkpoint(path);
    out = train::to_json(loaded.metadata);
    out["params"] = nn::count_parameters(*loaded.model);
    out["head_params"] = nn::count_parameters(*loaded.model->head.ptr());
    out["feature_dim"] = loaded.model->feature_dim();
    if (loaded.quantization) out["quantization"] = train::to_json(*loaded.quantization);
  } else {
    const auto classes = (*args)["classes"].as<int64_t>();
    const auto channels = (*args)["channels"].as<int64_t>();
    TORCH_CHECK(classes >= 1, "--classes must be positive, got ", classes);
    TORCH_CHECK(channels >= 1, "--channels must be positive, got ", channels);
    auto model_opts = model_options(*args, classes, channels, /*small_images=*/false);
    auto model = nn::make_classifier(model_opts);
    const auto kind = model_opts.head().kind();
    out = {{"arch", model_opts.arch()},
           {"head", nn::to_string(kind)},
           {"splits", kind == nn::HeadKind::kSSM ? model_opts.head().splits() : 1},
           {"k", kind == nn::HeadKind::kKFC ? model_opts.head().k() : 1},
           {"num_classes", classes},
           {"params", nn::count_parameters(*model)},
           {"head_params", nn::count_parameters(*model->head.ptr())},
           {"backbone_params", nn::count_parameters(*model->backbone)},
           {"feature_dim", model->feature_dim()}};
  }
  if (args->count("json")) {
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    for (auto it = out.begin(); it != out.end(); ++it) std::printf("%-14s %s\n", it.key().c_str(), it.value().dump().c_str());
  }
  return 0;
}

}  // namespace splitshare::cli
