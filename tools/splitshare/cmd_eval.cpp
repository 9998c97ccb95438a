#include "splitshare/commands.h"
#include "splitshare/options.h"

#include <splitshare/eval/metrics.h>
#include <splitshare/eval/mistakes.h>
#include <splitshare/eval/per_class.h>
#include <splitshare/image/png.h>
#include <splitshare/explain/mistakes_sheet.h>
#include <splitshare/checkpoint/checkpoint.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>

namespace splitshare::cli {
namespace {

// One evaluated checkpoint.
struct Member {
  std::string path;
  eval::EvalResult result;
  eval::PerClassReport per_class;
};

// The checkpoint's class names, else the data's, else none (indices are shown).
std::vector<std::string> class_names(const train::CheckpointMetadata& m, const std::vector<std::string>& data) {
  const auto k = static_cast<size_t>(m.model.num_classes());
  if (m.classes.size() == k) return m.classes;
  return data.size() == k ? data : std::vector<std::string>{};
}

// The most confident mistakes of `model` as a contact sheet at `path`; their list for --json.
nlohmann::json write_misclassified(const nn::Predictor& model, data::BatchStream& stream,
                                   const train::CheckpointMetadata& m, const std::vector<std::string>& classes,
                                   int64_t count, const std::string& path) {
  const auto mistakes = eval::most_confident_mistakes(model, stream, count, torch::kCPU);
  if (mistakes.empty()) {
    std::fprintf(stderr, "eval: no misclassified samples; %s not written\n", path.c_str());
  } else {
    data::write_png(path, explain::mistakes_sheet(mistakes, m.preprocess, classes));
    std::fprintf(stderr, "eval: the %zu most confident mistakes -> %s\n", mistakes.size(), path.c_str());
  }
  return {{"path", mistakes.empty() ? nlohmann::json() : nlohmann::json(path)},
          {"samples", eval::to_json(mistakes, classes)}};
}

void print_per_class(const eval::PerClassReport& r) {
  auto order = r.per_class;
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.recall < b.recall; });
  const bool heads = r.head_recall.size() > 1;
  std::printf("  per class, worst recall first (precision is 0 for a class never predicted):\n");
  std::printf("    %-22s %9s %8s %8s %8s", "class", "precision", "recall", "f1", "support");
  for (size_t h = 0; heads && h < r.head_recall.size(); ++h) std::printf("  head %zu", h + 1);
  std::printf("\n");
  auto row = [&](const eval::ClassScores& s, const std::string& name) {
    std::printf("    %-22.22s %8.2f%% %7.2f%% %7.2f%% %8lld", name.c_str(), 100 * s.precision, 100 * s.recall,
                100 * s.f1, static_cast<long long>(s.support));
  };
  for (const auto& s : order) {
    row(s, s.name);
    for (size_t h = 0; heads && h < r.head_recall.size(); ++h) std::printf(" %6.2f%%", 100 * r.head_recall[h][s.index]);
    std::printf("\n");
  }
  row(r.macro, "macro average");
  std::printf("\n");
  row(r.weighted, "weighted average");
  std::printf("\n");
  if (r.confused_pairs.empty()) return;
  std::printf("  most confused (true -> predicted):\n");
  for (const auto& p : r.confused_pairs) {
    std::printf("    %s -> %s: %lld (%.2f%% of %s)\n", p.truth_name.c_str(), p.predicted_name.c_str(),
                static_cast<long long>(p.count), 100 * p.rate, p.truth_name.c_str());
  }
}

void print_text(const std::vector<Member>& members, double ensemble) {
  for (const auto& member : members) {
    const auto& r = member.result;
    std::printf("%s: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%lld samples)\n", member.path.c_str(), 100 * r.top1,
                100 * r.top5, r.loss, static_cast<long long>(r.samples));
    if (r.head_top1.size() > 1) {
      std::printf("  per-head top-1:");
      for (auto h : r.head_top1) std::printf(" %.2f%%", 100 * h);
      std::printf("\n  mean %.2f%%  most-confident head %.2f%%  confidence-weighted %.2f%%  oracle %.2f%%\n",
                  100 * r.mean_top1(), 100 * r.most_confident, 100 * r.confidence_weighted, 100 * r.oracle);
      if (r.gated) {
        std::printf("  gate %.2f%%  (closes %+.1f%% of the mean-to-oracle gap)\n", 100 * r.top1,
                    100 * eval::gap_closed(r.ungated_top1, r.top1, r.oracle));
      }
    }
    print_per_class(member.per_class);
  }
  if (members.size() > 1) std::printf("ensemble of %zu: top-1 %.2f%%\n", members.size(), 100 * ensemble);
}

// The --json object: one member's figures, or each member's and the ensemble's.
nlohmann::json eval_json(const std::vector<Member>& members, const nlohmann::json& mistakes) {
  if (members.size() == 1) {
    auto out = eval::to_json(members[0].result, members[0].per_class);
    if (!mistakes.is_null()) out["misclassified"] = mistakes;
    return out;
  }
  nlohmann::json list = nlohmann::json::array();
  std::vector<eval::EvalResult> results;
  for (const auto& member : members) {
    auto j = eval::to_json(member.result, member.per_class);
    j["checkpoint"] = member.path;
    list.push_back(j);
    results.push_back(member.result);
  }
  const double ensemble = eval::ensemble_top1(results);
  return {{"top1", ensemble}, {"samples", members[0].result.samples}, {"members", list}, {"ensemble", {{"top1", ensemble}}}};
}

}  // namespace

int run_eval(int argc, char** argv) {
  cxxopts::Options options(argv[0], "Evaluate one checkpoint, or several and their ensemble (mean of softmax)");
  options.add_options()
      ("checkpoint", "checkpoint file; repeat the flag for an ensemble (one path per flag: a comma is part of the path)", paths())
      ("json", "print JSON")
      ("misclassified", "draw the N most confident mistakes (one checkpoint) into --misclassified-out",
       number<int64_t>()->default_value("0"))
      ("misclassified-out", "PNG file for --misclassified", cxxopts::value<std::string>());
  add_data_options(options);
  add_thread_option(options);
  add_inference_precision_option(options);
  add_tta_option(options);
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  TORCH_CHECK(args->count("checkpoint"), "--checkpoint is required");
  const auto misclassified = (*args)["misclassified"].as<int64_t>();
  TORCH_CHECK(misclassified >= 0, "--misclassified must be >= 0, got ", misclassified);
  TORCH_CHECK(misclassified == 0 || args->count("misclassified-out"),
              "--misclassified needs --misclassified-out FILE.png");
  configure_threads(*args);
  const auto dtype = inference_dtype(*args, torch::Device(torch::kCPU));
  const bool flip = tta_flip(*args);
  const auto paths = (*args)["checkpoint"].as<std::vector<std::string>>();
  TORCH_CHECK(misclassified == 0 || paths.size() == 1, "--misclassified takes one --checkpoint, got ", paths.size());
  for (const auto& path : paths) {
    std::error_code error;
    TORCH_CHECK(std::filesystem::exists(path, error) || path.find(',') == std::string::npos, "--checkpoint ", path,
                ": no such file; for an ensemble, repeat --checkpoint for each model (one path per flag: a comma is "
                "part of the path)");
  }
  auto data_opts = data_options(*args).augment(false);
  auto spec = run_data_spec(*args, paths[0], "eval");
  follow_run_data(paths[0], data_opts);
  // Classes and channels, to check each checkpoint against before opening the data for it.
  const auto probe = data::open_data(spec, data::DataOptions(data_opts).limit_train(1).limit_val(1));

  // Members that record the same evaluation (the usual ensemble: seeds of one recipe) share one opening.
  auto same_evaluation = [](const data::Preprocess& a, const data::Preprocess& b) {
    return a.mean == b.mean && a.std == b.std && a.resize_mode == b.resize_mode && a.crop == b.crop;
  };
  std::optional<data::Preprocess> opened_for;
  data::DataBundle bundle;
  std::vector<Member> members;
  nlohmann::json mistakes;
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
    const auto model = inference_model(*args, loaded, dtype, "eval");
    auto result = eval::evaluate(*model, *bundle.val, /*keep_probabilities=*/paths.size() > 1, torch::kCPU, nullptr, flip);
    const auto classes = class_names(m, probe.classes);
    auto per_class = eval::per_class_report(result, classes);
    members.push_back({path, std::move(result), std::move(per_class)});
    if (misclassified > 0) {
      mistakes = write_misclassified(*model, *bundle.val, m, classes, misclassified,
                                     (*args)["misclassified-out"].as<std::string>());
    }
  }
  const auto out = eval_json(members, mistakes);
  if (args->count("json")) {
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  print_text(members, out["top1"].get<double>());
  return 0;
}

}  // namespace splitshare::cli
