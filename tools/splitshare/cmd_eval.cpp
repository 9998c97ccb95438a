#include "splitshare/commands.h"
#include "splitshare/common.h"

#include <splitshare/eval/metrics.h>
#include <splitshare/train/checkpoint.h>

#include <cstdio>
#include <optional>

namespace splitshare::cli {

int run_eval(int argc, char** argv) {
  cxxopts::Options options(argv[0], "Evaluate one checkpoint, or several and their ensemble (mean of softmax)");
  options.add_options()
      ("checkpoint", "checkpoint file (repeat for an ensemble)", cxxopts::value<std::vector<std::string>>())
      ("json", "print JSON");
  add_data_options(options);
  add_thread_option(options);
  add_inference_precision_option(options);
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  TORCH_CHECK(args->count("checkpoint"), "--checkpoint is required");
  configure_threads(*args);
  const auto dtype = inference_dtype(*args);
  const auto paths = (*args)["checkpoint"].as<std::vector<std::string>>();
  auto data_opts = data_options(*args).augment(false);
  auto spec = data_spec(*args);
  follow_run_data(paths[0], data_opts);
  // Classes and channels, to check each checkpoint against before opening the data for it.
  const auto probe = data::open_data(spec, data::DataOptions(data_opts).limit_train(1).limit_val(1));

  // Members that record the same evaluation (the usual ensemble: seeds of one recipe) share one opening.
  auto same_evaluation = [](const data::Preprocess& a, const data::Preprocess& b) {
    return a.mean == b.mean && a.std == b.std && a.resize_mode == b.resize_mode && a.crop == b.crop;
  };
  std::optional<data::Preprocess> opened_for;
  data::DataBundle bundle;
  std::vector<eval::EvalResult> members;
  for (const auto& path : paths) {
    auto loaded = train::load_checkpoint(path);
    const auto& m = loaded.metadata;
    TORCH_CHECK(m.model.num_classes() == static_cast<int64_t>(probe.classes.size()), path, " predicts ",
                m.model.num_classes(), " classes but the data has ", probe.classes.size());
    TORCH_CHECK(m.preprocess.channels == probe.preprocess.channels, path, " expects ", m.preprocess.channels,
                "-channel images but the data has ", probe.preprocess.channels);
    // Normalised, resized and cropped as the model was trained (what its checkpoint records),
    // not with this data's own statistics.
    if (!opened_for || !same_evaluation(*opened_for, m.preprocess)) {
      bundle = data::open_data(spec, data::evaluation_options(data_opts, m.preprocess));
      opened_for = m.preprocess;
    }
    members.push_back(eval::evaluate(*loaded.model, *bundle.val, /*keep_probabilities=*/paths.size() > 1,
                                     torch::kCPU, nullptr, dtype));
  }
  nlohmann::json out;
  if (members.size() == 1) {
    out = eval::to_json(members[0]);
  } else {
    nlohmann::json list = nlohmann::json::array();
    for (size_t i = 0; i < members.size(); ++i) {
      auto j = eval::to_json(members[i]);
      j["checkpoint"] = paths[i];
      list.push_back(j);
    }
    const double ensemble = eval::ensemble_top1(members);
    out = {{"top1", ensemble}, {"samples", members[0].samples}, {"members", list}, {"ensemble", {{"top1", ensemble}}}};
  }
  if (args->count("json")) {
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  for (size_t i = 0; i < members.size(); ++i) {
    const auto& r = members[i];
    std::printf("%s: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%lld samples)\n", paths[i].c_str(), 100 * r.top1,
                100 * r.top5, r.loss, static_cast<long long>(r.samples));
    if (r.head_top1.size() > 1) {
      std::printf("  per-head top-1:");
      for (auto h : r.head_top1) std::printf(" %.2f%%", 100 * h);
      std::printf("\n  oracle %.2f%%  most-confident head %.2f%%  confidence-weighted %.2f%%\n", 100 * r.oracle,
                  100 * r.most_confident, 100 * r.confidence_weighted);
    }
  }
  if (members.size() > 1) std::printf("ensemble of %zu: top-1 %.2f%%\n", members.size(), 100 * out["top1"].get<double>());
  return 0;
}

}  // namespace splitshare::cli
