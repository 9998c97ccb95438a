// The bench table and its JSON: ours against every peer, the best peer, achieved GFLOP/s.
#include <splitshare/bench/throughput.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace splitshare::bench {
namespace {

std::string cell(const Timing& t, bool memory) {
  char text[64];
  if (memory) {
    std::snprintf(text, sizeof text, "%.0f MiB", t.peak_rss_mb);
  } else {
    std::snprintf(text, sizeof text, "%.1f / %.1f", t.min(), t.median());
  }
  return text;
}

nlohmann::json timing_json(const Timing& t) {
  nlohmann::json j = {{"images_per_second", t.images_per_second}, {"median", t.median()}, {"min", t.min()},
                      {"max", t.max()}, {"peak_rss_mb", t.peak_rss_mb}};
  if (t.compile_seconds > 0) j["compile_seconds"] = t.compile_seconds;
  if (t.round_medians.size() > 1) j["round_medians"] = t.round_medians;
  return j;
}

const char* unit(const Workload& w) {
  if (w.memory()) return "MiB";
  return w.task() == Task::kHead || w.task() == Task::kHeadInfer ? "feature vectors/s" : "images/s";
}

double flops_per_item(const Row& row) {
  for (const auto& [_, t] : row.peers) {
    if (t.flops_per_item > 0) return t.flops_per_item;
  }
  return 0;
}

// Ours over `best` round by round, when both were measured in the same rounds; null otherwise.
nlohmann::json ratio_by_round(const Row& r, const std::string& best) {
  if (best.empty() || r.workload.memory()) return nullptr;
  const auto& ours = r.ours.round_medians;
  const auto& peer = r.peers.at(best).round_medians;
  if (ours.size() < 2 || peer.size() != ours.size()) return nullptr;
  std::vector<double> ratios;
  for (size_t i = 0; i < ours.size(); ++i) ratios.push_back(ours[i] / std::max(1e-9, peer[i]));
  return ratios;
}

}  // namespace

double ratio(const Timing& ours, const Timing& peer, bool memory) {
  if (memory) return peer.peak_rss_mb / std::max(1e-9, ours.peak_rss_mb);
  return ours.median() / std::max(1e-9, peer.median());
}

std::string best_peer(const Row& row) {
  std::string best;
  for (const auto& [name, t] : row.peers) {
    // The best peer is the one our ratio is smallest against.
    if (best.empty() || ratio(row.ours, t, row.workload.memory()) < ratio(row.ours, row.peers.at(best), row.workload.memory())) {
      best = name;
    }
  }
  return best;
}

double achieved_gflops(const Row& row) {
  if (row.workload.memory()) return 0;
  return flops_per_item(row) * row.ours.median() / 1e9;
}

std::string format_table(const std::vector<Row>& rows) {
  std::ostringstream out;
  char line[400];
  const char* format = "%-38s %-5s %17s %17s %17s %17s %6s %-12s %7s %5s %5s\n";
  std::snprintf(line, sizeof line, format, "workload (items/s: min / median)", "prec", "splitshare", "eager",
                "eager_tuned", "compile", "ratio", "vs best", "GFLOP/s", "%mm", "%FMA");
  out << line;
  for (const auto& r : rows) {
    const bool memory = r.workload.memory();
    std::vector<std::string> peers;
    for (const auto& name : peer_names()) peers.push_back(r.peers.count(name) ? cell(r.peers.at(name), memory) : "-");
    const auto best = best_peer(r);
    char ratio_text[32] = "-", gflops[32] = "-", fraction[32] = "-", machine[32] = "-";
    if (!best.empty()) std::snprintf(ratio_text, sizeof ratio_text, "%.2fx", ratio(r.ours, r.peers.at(best), memory));
    const double achieved = achieved_gflops(r);
    if (achieved > 0) std::snprintf(gflops, sizeof gflops, "%.0f", achieved);
    if (achieved > 0 && r.peak_gflops > 0) std::snprintf(fraction, sizeof fraction, "%.0f%%", 100 * achieved / r.peak_gflops);
    if (achieved > 0 && r.machine_peak_gflops > 0) {
      std::snprintf(machine, sizeof machine, "%.0f%%", 100 * achieved / r.machine_peak_gflops);
    }
    std::snprintf(line, sizeof line, format, r.workload.name().c_str(), train::to_string(r.workload.precision()).c_str(),
                  cell(r.ours, memory).c_str(), peers[0].c_str(), peers[1].c_str(), peers[2].c_str(), ratio_text,
                  best.empty() ? "-" : best.c_str(), gflops, fraction, machine);
    out << line;
  }
  return out.str();
}

nlohmann::json to_json(const std::vector<Row>& rows) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rows) {
    const bool memory = r.workload.memory();
    nlohmann::json row = {{"workload", r.workload.name()},
                          {"key", r.key},
                          {"task", to_string(r.workload.task())},
                          {"unit", unit(r.workload)},
                          {"precision", train::to_string(r.workload.precision())},
                          {"memory", memory},
                          {"batch", r.workload.batch()},
                          {"image_size", r.workload.image_size()},
                          {"ours", timing_json(r.ours)},
                          {"peers", nlohmann::json::object()}};
    for (const auto& [name, t] : r.peers) row["peers"][name] = timing_json(t);
    const auto best = best_peer(r);
    row["best_peer"] = best.empty() ? nlohmann::json(nullptr) : nlohmann::json(best);
    row["ratio_vs_best_peer"] = best.empty() ? nlohmann::json(nullptr) : nlohmann::json(ratio(r.ours, r.peers.at(best), memory));
    if (const auto by_round = ratio_by_round(r, best); !by_round.is_null()) row["ratio_by_round"] = by_round;
    const double achieved = achieved_gflops(r);
    row["gflops"] = achieved > 0 ? nlohmann::json(achieved) : nlohmann::json(nullptr);
    row["peak_fraction"] = achieved > 0 && r.peak_gflops > 0 ? nlohmann::json(achieved / r.peak_gflops) : nlohmann::json(nullptr);
    row["machine_peak_fraction"] = achieved > 0 && r.machine_peak_gflops > 0
                                       ? nlohmann::json(achieved / r.machine_peak_gflops)
                                       : nlohmann::json(nullptr);
    out.push_back(row);
  }
  return out;
}

}  // namespace splitshare::bench
