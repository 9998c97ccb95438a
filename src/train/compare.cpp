#include <splitshare/train/compare.h>
#include <splitshare/util/files.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace splitshare::train {
namespace {

std::pair<double, double> mean_std(const std::vector<double>& values) {
  if (values.empty()) return {0.0, 0.0};
  double mean = 0;
  for (double v : values) mean += v;
  mean /= values.size();
  double var = 0;
  for (double v : values) var += (v - mean) * (v - mean);
  var = values.size() > 1 ? var / (values.size() - 1) : 0.0;
  return {mean, std::sqrt(var)};
}

std::string percent(double v) {
  if (std::isnan(v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", 100 * v);
  return buf;
}

std::string signed_percent(double v) { return std::isnan(v) ? "-" : (v >= 0 ? "+" : "") + percent(v); }

}  // namespace

Variant parse_variant(const std::string& name, int64_t splits) {
  Variant v;
  v.name = name;
  if (name == "linear") {
    v.head.kind(nn::HeadKind::kLinear);
  } else if (name == "ssm") {
    v.head.kind(nn::HeadKind::kSSM).splits(splits);
  } else if (name == "ssm-individual") {
    v.head.kind(nn::HeadKind::kSSM).splits(splits);
    v.loss = nn::LossKind::kIndividual;
  } else if (name == "ssm-allnorm") {
    v.head.kind(nn::HeadKind::kSSM).splits(splits).last_plain(false);
  } else if (name == "ssm-lastplain") {  // the default SSM, by the name older versions gave it
    v.head.kind(nn::HeadKind::kSSM).splits(splits).last_plain(true);
  } else if (name.rfind("kfc", 0) == 0 && name.size() > 3 &&
             name.find_first_not_of("0123456789", 3) == std::string::npos) {
    v.head.kind(nn::HeadKind::kKFC).k(std::stoll(name.substr(3)));
  } else {
    TORCH_CHECK(false, "unknown variant '", name,
                "': expected linear, ssm, ssm-allnorm, ssm-individual, ssm-lastplain or kfcK (e.g. kfc2, kfc3)");
  }
  return v;
}

namespace {

// What a compare run records of its data, so that a later compare into the same folder does
// not reuse runs made on other data.
nlohmann::json data_record(const data::DataSpec& spec, const data::DataOptions& options) {
  return {{"kind", spec.kind},          {"root", spec.root},
          {"train", spec.train_path},   {"val", spec.val_path},
          {"limit_train", options.limit_train()}, {"limit_val", options.limit_val()},
          {"augment", options.augment()}, {"image_size", options.image_size()}};
}

// A finished run is reused only when it recorded the training options and data asked for now
// (runs that predate a record are not checked on it).
void check_same_settings(const std::string& dir, const nlohmann::json& asked) {
  const auto state = read_training_state(dir + "/checkpoint.pt");
  if (!state) return;
  std::string differences;
  const auto caller = state->config.value("caller", nlohmann::json::object());
  for (const auto& section : {"train", "data_settings"}) {
    const auto& holder = std::string(section) == "train" ? state->config : caller;
    const auto saved = holder.is_object() ? holder.value(section, nlohmann::json::object()) : nlohmann::json::object();
    for (const auto& [key, value] : asked.at(section).items()) {
      if (!saved.contains(key) || saved.at(key) == value) continue;
      differences += "\n  " + std::string(section) + "." + key + ": " + saved.at(key).dump() + " in the run, " +
                     value.dump() + " asked for";
    }
  }
  TORCH_CHECK(differences.empty(), dir, "/checkpoint.pt was trained with other settings than this compare asks for:",
              differences, "\nuse another --out folder or move ", dir, " away");
}

// A run that finished earlier: its final model, checked to be the variant, recipe and data asked for.
nn::Classifier finished_run(const std::string& dir, const Variant& variant, uint64_t seed,
                            const nn::ClassifierOptions& model_options, const RunContext& context,
                            const nlohmann::json& asked) {
  std::fprintf(stderr, "%s seed %llu: finished earlier, reusing %s/checkpoint.pt\n", variant.name.c_str(),
               static_cast<unsigned long long>(seed), dir.c_str());
  check_same_settings(dir, asked);
  auto loaded = load_checkpoint(dir + "/checkpoint.pt", context.device());
  // A folder left by a run with other flags must not pass for this variant.
  const auto differences = model_differences(nn::ClassifierOptions(model_options).head(variant.head),
                                             loaded.metadata.model);
  if (!differences.empty()) {
    std::string list;
    for (const auto& d : differences) list += "\n  " + d;
    TORCH_CHECK(false, dir, "/checkpoint.pt was trained with another model than this run asks for:", list,
                "\nuse another --out folder or delete ", dir);
  }
  return loaded.model;
}

// Trains one variant and seed into `dir`; a run stopped part-way continues from its last
// checkpoint (fit refuses one of other settings).
nn::Classifier train_run(const std::string& dir, const Variant& variant, uint64_t seed, data::DataBundle& data,
                         const nn::ClassifierOptions& model_options, const TrainOptions& train,
                         const RunContext& context, bool progress, const data::Preprocess* preprocess_override,
                         const nlohmann::json& data_json) {
  torch::manual_seed(seed);
  auto options_for_variant = nn::ClassifierOptions(model_options).head(variant.head);
  auto model = nn::make_classifier(options_for_variant);
  CheckpointMetadata metadata;
  metadata.model = options_for_variant;
  metadata.classes = data.classes;
  metadata.preprocess = preprocess_override ? *preprocess_override : data.preprocess;
  metadata.extra["config"] = {
      {"variant", variant.name}, {"seed", seed}, {"loss", nn::to_string(variant.loss)}, {"data_settings", data_json}};
  const auto label = variant.name + "/" + std::to_string(seed);
  auto run_context = RunContext(context).out_dir(dir).observer(progress ? progress_printer(label) : FitObserver());
  if (std::filesystem::exists(dir + "/checkpoint.pt")) {
    std::fprintf(stderr, "%s seed %llu: stopped part-way, continuing from %s/checkpoint.pt\n", variant.name.c_str(),
                 static_cast<unsigned long long>(seed), dir.c_str());
    run_context.resume_from(dir + "/checkpoint.pt");
  }
  fit(model, data, TrainOptions(train).loss(variant.loss), run_context, metadata);
  return model;
}

}  // namespace

std::vector<run::VariantResult> run_compare(const CompareOptions& options, const nn::ClassifierOptions& model_options,
                                       const data::DataSpec& data_spec, const data::DataOptions& data_options,
                                       const TrainOptions& train, const RunContext& context,
                                       const data::Preprocess* preprocess_override) {
  TORCH_CHECK(options.seeds() >= 1, "compare: --seeds must be at least 1, got ", options.seeds());
  TORCH_CHECK(!options.variants().empty(), "compare: no variants given");
  std::vector<Variant> variants;
  for (const auto& name : options.variants()) variants.push_back(parse_variant(name, options.splits()));

  std::vector<run::VariantResult> results;
  for (const auto& variant : variants) {
    run::VariantResult vr;
    vr.name = variant.name;
    for (int64_t s = 0; s < options.seeds(); ++s) {
      const uint64_t seed = options.seed() + static_cast<uint64_t>(s);
      const std::string dir = options.out_dir() + "/" + variant.name + "/seed-" + std::to_string(seed);
      auto data = data::open_data(data_spec, data::DataOptions(data_options).seed(seed));
      const auto recorded = data_record(data_spec, data::DataOptions(data_options).seed(seed));
      const nlohmann::json asked = {{"train", to_json(TrainOptions(train).loss(variant.loss))},
                                    {"data_settings", recorded}};
      auto model = std::filesystem::exists(dir + "/summary.json") && std::filesystem::exists(dir + "/checkpoint.pt")
                       ? finished_run(dir, variant, seed, model_options, context, asked)
                       : train_run(dir, variant, seed, data, model_options, train, context, options.progress(),
                                   preprocess_override, recorded);
      vr.params = nn::count_parameters(*model);
      vr.head_params = nn::count_parameters(*model->head.ptr());
      vr.seeds.push_back(seed);
      vr.runs.push_back(eval::evaluate(*model, *data.val, /*keep_probabilities=*/true, context.device()));
    }
    std::vector<double> top1, top5, oracle;
    for (const auto& r : vr.runs) {
      top1.push_back(r.top1);
      top5.push_back(r.top5);
      oracle.push_back(r.oracle);
    }
    std::tie(vr.top1_mean, vr.top1_std) = mean_std(top1);
    std::tie(vr.top5_mean, vr.top5_std) = mean_std(top5);
    vr.oracle_mean = mean_std(oracle).first;
    for (size_t h = 0; h < vr.runs[0].head_top1.size(); ++h) {
      std::vector<double> head;
      for (const auto& r : vr.runs) head.push_back(r.head_top1.at(h));
      vr.head_top1_mean.push_back(mean_std(head).first);
    }
    const double nan = std::numeric_limits<double>::quiet_NaN();
    vr.ensemble_top1 = vr.runs.size() >= 2 ? eval::ensemble_top1({vr.runs[0], vr.runs[1]}) : nan;
    if (vr.runs.size() >= 2) {
      vr.ensemble_gain_over_mean = vr.ensemble_top1 - (vr.runs[0].top1 + vr.runs[1].top1) / 2;
      vr.ensemble_gain_over_best = vr.ensemble_top1 - std::max(vr.runs[0].top1, vr.runs[1].top1);
    } else {
      vr.ensemble_gain_over_mean = vr.ensemble_gain_over_best = nan;
    }
    results.push_back(std::move(vr));
  }
  std::filesystem::create_directories(options.out_dir());
  util::write_file_atomic(options.out_dir() + "/compare.json", to_json(results).dump(2) + "\n");
  return results;
}

std::string format_compare_table(const std::vector<run::VariantResult>& results) {
  std::ostringstream out;
  char line[512];
  std::snprintf(line, sizeof line, "%-16s %12s %11s %15s %15s %8s %9s %9s %9s  %s\n", "variant", "params",
                "head params", "top-1 %", "top-5 %", "oracle %", "ens.2 %", "gain/best", "gain/mean", "per-head top-1 %");
  out << line;
  for (const auto& r : results) {
    std::string heads;
    if (r.head_top1_mean.size() > 1) {
      for (size_t h = 0; h < r.head_top1_mean.size(); ++h) heads += (h ? " / " : "") + percent(r.head_top1_mean[h]);
    }
    const std::string top1 = percent(r.top1_mean) + (r.runs.size() > 1 ? " ± " + percent(r.top1_std) : "");
    const std::string top5 = percent(r.top5_mean) + (r.runs.size() > 1 ? " ± " + percent(r.top5_std) : "");
    std::snprintf(line, sizeof line, "%-16s %12lld %11lld %15s %15s %8s %9s %9s %9s  %s\n", r.name.c_str(),
                  static_cast<long long>(r.params), static_cast<long long>(r.head_params), top1.c_str(), top5.c_str(),
                  heads.empty() ? "-" : percent(r.oracle_mean).c_str(), percent(r.ensemble_top1).c_str(),
                  signed_percent(r.ensemble_gain_over_best).c_str(), signed_percent(r.ensemble_gain_over_mean).c_str(),
                  heads.empty() ? "-" : heads.c_str());
    out << line;
  }
  return out.str();
}



}  // namespace splitshare::train
