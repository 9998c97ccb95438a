#include <splitshare/run/records.h>

#include <cmath>
#include <limits>

namespace splitshare::run {

nlohmann::json to_json(const EpochRecord& r) {
  nlohmann::json j = {{"epoch", r.epoch},
          {"lr", r.lr},
          {"train_loss", r.train_loss},
          {"train_top1", r.train_top1},
          {"images_per_second", r.images_per_second},
          {"data_seconds", r.data_seconds},
          {"compute_seconds", r.compute_seconds},
          {"val", eval::to_json(r.val)}};
  if (r.ema_val) j["ema_val"] = eval::to_json(*r.ema_val);
  return j;
}

EpochRecord epoch_record_from_json(const nlohmann::json& j) {
  EpochRecord r;
  r.epoch = j.at("epoch").get<int64_t>();
  r.lr = j.at("lr").get<double>();
  r.train_loss = j.at("train_loss").get<double>();
  r.train_top1 = j.at("train_top1").get<double>();
  r.images_per_second = j.at("images_per_second").get<double>();
  r.data_seconds = j.at("data_seconds").get<double>();
  r.compute_seconds = j.at("compute_seconds").get<double>();
  r.val = eval::from_json(j.at("val"));
  if (j.contains("ema_val")) r.ema_val = eval::from_json(j.at("ema_val"));
  return r;
}

nlohmann::json to_json(const RunSummary& s) {
  return {{"best_top1", s.best_top1},   {"best_epoch", s.best_epoch}, {"seconds", s.seconds},
          {"params", s.params},         {"head_params", s.head_params}, {"final", to_json(s.last)},
          {"model", train::to_json(s.model)}, {"build", s.build},
          {"train", s.train},           {"train_images_per_epoch", s.train_images_per_epoch}};
}

RunSummary summary_from_json(const nlohmann::json& j, const std::string& source) {
  TORCH_CHECK(j.is_object(), source, ": not a JSON object");
  RunSummary s;
  try {
    s.best_top1 = j.at("best_top1").get<double>();
    s.best_epoch = j.at("best_epoch").get<int64_t>();
    s.seconds = j.at("seconds").get<double>();
    s.params = j.at("params").get<int64_t>();
    s.head_params = j.at("head_params").get<int64_t>();
    s.last = epoch_record_from_json(j.at("final"));
    s.build = j.value("build", nlohmann::json::object());
    s.train = j.value("train", nlohmann::json::object());
    s.train_images_per_epoch = j.value("train_images_per_epoch", int64_t{0});
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, source, ": not a run summary: ", e.what());
  }
  s.model = train::metadata_from_json(j.at("model"), source + " (model)");
  return s;
}

nlohmann::json to_json(const std::vector<VariantResult>& results) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : results) {
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& run : r.runs) runs.push_back(eval::to_json(run));
    auto number_or_null = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
    out.push_back({{"variant", r.name},
                   {"params", r.params},
                   {"head_params", r.head_params},
                   {"seeds", r.seeds},
                   {"top1_mean", r.top1_mean},
                   {"top1_std", r.top1_std},
                   {"top5_mean", r.top5_mean},
                   {"top5_std", r.top5_std},
                   {"head_top1_mean", r.head_top1_mean},
                   {"oracle_mean", r.oracle_mean},
                   {"ensemble_top1", number_or_null(r.ensemble_top1)},
                   {"ensemble_gain_over_mean", number_or_null(r.ensemble_gain_over_mean)},
                   {"ensemble_gain_over_best", number_or_null(r.ensemble_gain_over_best)},
                   {"runs", runs}});
  }
  return {{"variants", out}};
}

std::vector<VariantResult> variants_from_json(const nlohmann::json& j, const std::string& source) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto number_or_nan = [nan](const nlohmann::json& v) { return v.is_null() ? nan : v.get<double>(); };
  std::vector<VariantResult> results;
  try {
    for (const auto& v : j.at("variants")) {
      VariantResult r;
      r.name = v.at("variant").get<std::string>();
      r.params = v.at("params").get<int64_t>();
      r.head_params = v.at("head_params").get<int64_t>();
      r.seeds = v.at("seeds").get<std::vector<uint64_t>>();
      r.top1_mean = v.at("top1_mean").get<double>();
      r.top1_std = v.at("top1_std").get<double>();
      r.top5_mean = v.at("top5_mean").get<double>();
      r.top5_std = v.at("top5_std").get<double>();
      r.head_top1_mean = v.at("head_top1_mean").get<std::vector<double>>();
      r.oracle_mean = v.at("oracle_mean").get<double>();
      r.ensemble_top1 = number_or_nan(v.at("ensemble_top1"));
      // Files before the two named gains had the gain over the mean as "ensemble_gain".
      r.ensemble_gain_over_mean = number_or_nan(v.contains("ensemble_gain_over_mean") ? v.at("ensemble_gain_over_mean")
                                                                                      : v.at("ensemble_gain"));
      r.ensemble_gain_over_best = number_or_nan(v.value("ensemble_gain_over_best", nlohmann::json()));
      for (const auto& run : v.at("runs")) r.runs.push_back(eval::from_json(run));
      TORCH_CHECK(r.runs.size() == r.seeds.size(), source, ": variant ", r.name, " lists ", r.seeds.size(),
                  " seeds but ", r.runs.size(), " runs");
      results.push_back(std::move(r));
    }
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, source, ": not a compare.json: ", e.what());
  }
  return results;
}

}  // namespace splitshare::run
