#include <splitshare/report/html.h>
#include <splitshare/report/per_class_section.h>
#include <splitshare/util/files.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>

namespace splitshare::report {
namespace {

namespace fs = std::filesystem;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
std::string percent(double v, int precision = 2) { return std::isfinite(v) ? format_number(100.0 * v, precision) : "-"; }

double mean_of(const std::vector<double>& v) {
  double sum = 0;
  int64_t n = 0;
  for (double x : v) {
    if (!std::isfinite(x)) continue;
    sum += x;
    ++n;
  }
  return n ? sum / n : kNaN;
}

// ---- report sections ----

std::string table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                  size_t text_columns = 1) {
  std::ostringstream out;
  out << "<table>";
  if (!header.empty()) {
    out << "<thead><tr>";
    for (const auto& h : header) out << "<th>" << escape_html(h) << "</th>";
    out << "</tr></thead>";
  }
  out << "<tbody>";
  for (const auto& row : rows) {
    out << "<tr>";
    for (size_t c = 0; c < row.size(); ++c) {
      out << (c < text_columns ? "<td>" : "<td class=\"num\">") << escape_html(row[c]) << "</td>";
    }
    out << "</tr>";
  }
  out << "</tbody></table>";
  return out.str();
}

using EpochField = std::function<double(const run::EpochRecord&)>;

std::vector<double> epoch_values(const RunRecord& run, const EpochField& get) {
  std::vector<double> v;
  for (const auto& e : run.epochs) v.push_back(get(e));
  return v;
}

std::vector<double> epoch_numbers(const RunRecord& run) {
  std::vector<double> x;
  for (const auto& e : run.epochs) x.push_back(static_cast<double>(e.epoch));
  return x;
}

// Per-epoch curves of several runs (compare) for one quantity.
std::string runs_chart(const std::vector<RunRecord>& runs, const EpochField& get,
                       const ChartOptions& options) {
  // One colour per variant; its first seed solid, the others dashed.
  std::vector<Series> series;
  std::vector<std::string> variants;
  for (const auto& run : runs) {
    if (run.epochs.empty()) continue;
    const std::string variant = run.name.substr(0, run.name.find('/'));
    auto it = std::find(variants.begin(), variants.end(), variant);
    const bool first_seed = it == variants.end();
    if (first_seed) it = variants.insert(variants.end(), variant);
    series.push_back({run.name, epoch_numbers(run), epoch_values(run, get), !first_seed, it - variants.begin()});
  }
  return line_chart_svg(series, options);
}

// The last validation metrics of a run: summary.json's, else the last epoch's.
eval::EvalResult final_metrics(const RunRecord& run) {
  if (run.summary) return run.summary->last.val;
  return run.epochs.empty() ? eval::EvalResult() : run.epochs.back().val;
}

std::string image_figure(const std::string& png, const std::string& caption) {
  std::ostringstream out;
  out << "<figure><img alt=\"" << escape_html("Grad-CAM " + caption) << "\" src=\"data:image/png;base64,"
      << base64(png) << "\"><figcaption>" << escape_html(caption) << "</figcaption></figure>";
  return out.str();
}

constexpr const char* kGradCamNote =
    "Grad-CAM of the first validation images w.r.t. their true class: the whole model (combined output, "
    "all channels), then each sub-classifier restricted to its own split of channels (paper Section 5, "
    "Figure 2). Captions: class and the probability the model / each head gives it.";

EpochField val_head(size_t head) {
  return [head](const run::EpochRecord& e) { return head < e.val.head_top1.size() ? e.val.head_top1[head] : kNaN; };
}

Series curve(const RunRecord& run, const std::string& name, const EpochField& get, bool dashed = false) {
  return {name, epoch_numbers(run), epoch_values(run, get), dashed};
}

std::string model_section(const RunRecord& run) {
  if (!run.summary) return "<h2>Model</h2><p>The run has not finished (no summary.json).</p>";
  const auto& s = *run.summary;
  const auto& head = s.model.model.head();
  const std::string kind = nn::to_string(head.kind());
  std::vector<std::vector<std::string>> rows = {
      {"architecture", s.model.model.arch()},
      {"head", kind + (head.kind() == nn::HeadKind::kSSM ? ", " + std::to_string(head.splits()) + " splits" : "")},
      {"parameters", std::to_string(s.params) + " (head " + std::to_string(s.head_params) + ")"},
      {"epochs", std::to_string(run.epochs.size())},
      {"training time", format_number(s.seconds, 1) + " s"},
  };
  if (!s.model.classes.empty()) {
    std::string names;
    for (const auto& c : s.model.classes) names += (names.empty() ? "" : ", ") + c;
    rows.push_back({"classes", names});
  }
  return "<h2>Model</h2>" + table({}, rows, 2);
}

std::string metrics_section(const RunRecord& run, const eval::EvalResult& m) {
  const std::string best = run.summary ? percent(run.summary->best_top1) + " (epoch " +
                                             std::to_string(run.summary->best_epoch) + ")"
                                       : "-";
  std::vector<std::vector<std::string>> rows = {{"top-1 %", percent(m.top1)},
                                                {"top-5 %", percent(m.top5)},
                                                {"loss", format_number(m.loss, 4)},
                                                {"best top-1 %", best},
                                                {"samples", std::to_string(m.samples)}};
  if (m.head_top1.size() > 1) {
    for (size_t h = 0; h < m.head_top1.size(); ++h) {
      rows.push_back({"head " + std::to_string(h + 1) + " top-1 %", percent(m.head_top1[h])});
    }
    rows.push_back({"oracle % (any head right)", percent(m.oracle)});
    rows.push_back({"most-confident head %", percent(m.most_confident)});
    rows.push_back({"confidence-weighted heads %", percent(m.confidence_weighted)});
  }
  return "<h2>Final validation metrics</h2>" + table({"metric", "value"}, rows);
}

// Each head's top-1 next to the label-free selection policies and the oracle.
std::string heads_section(const RunRecord& run, const eval::EvalResult& m) {
  const auto& heads = m.head_top1;
  if (heads.size() < 2) return "";
  BarGroup group{run.name, {}, {}};
  for (size_t h = 0; h < heads.size(); ++h) {
    group.labels.push_back("head " + std::to_string(h + 1));
    group.values.push_back(heads[h]);
  }
  for (auto [label, v] : {std::pair{"mean (model)", m.top1}, std::pair{"most confident", m.most_confident},
                          std::pair{"conf.-weighted", m.confidence_weighted}, std::pair{"oracle", m.oracle}}) {
    group.labels.push_back(label);
    group.values.push_back(v);
  }
  return "<h2>Per-head accuracy</h2>" +
         bar_chart_svg({group}, ChartOptions().title("validation top-1 by head and selection policy").x_label("")
                                    .percent(true).width(760));
}

std::string curves_section(const RunRecord& run, size_t heads) {
  std::vector<Series> accuracy = {curve(run, "train top-1", [](const auto& e) { return e.train_top1; }, true),
                                  curve(run, "validation top-1", [](const auto& e) { return e.val.top1; }),
                                  curve(run, "validation top-5", [](const auto& e) { return e.val.top5; })};
  for (size_t h = 0; heads > 1 && h < heads; ++h) {
    accuracy.push_back(curve(run, "head " + std::to_string(h + 1) + " top-1", val_head(h)));
  }
  return "<h2>Training curves</h2><div class=\"charts\">" +
         line_chart_svg({curve(run, "train loss", [](const auto& e) { return e.train_loss; }, true),
                         curve(run, "validation loss", [](const auto& e) { return e.val.loss; })},
                        ChartOptions().title("loss").y_label("cross-entropy")) +
         line_chart_svg(accuracy, ChartOptions().title("accuracy").percent(true)) +
         line_chart_svg({curve(run, "learning rate", [](const auto& e) { return e.lr; })},
                        ChartOptions().title("learning rate (end of epoch)").y_label("lr")) +
         "</div>";
}

std::string train_body(const ReportData& data) {
  const auto& run = data.runs.at(0);
  const auto m = final_metrics(run);
  std::string out = model_section(run) + metrics_section(run, m) + heads_section(run, m) +
                    curves_section(run, m.head_top1.size());
  if (run.per_class) out += per_class_section(*run.per_class);
  if (!run.gradcam_png.empty()) {
    out += "<h2>Grad-CAM per split</h2><p>" + std::string(kGradCamNote) + "</p>" +
           image_figure(run.gradcam_png, run.name);
  }
  return out;
}

// The per-run figures of a variant averaged over its seeds (compare.json keeps them per run).
struct SeedMeans {
  double most_confident = kNaN, confidence_weighted = kNaN;
};

SeedMeans seed_means(const run::VariantResult& v) {
  std::vector<double> confident, weighted;
  for (const auto& r : v.runs) {
    confident.push_back(r.most_confident);
    weighted.push_back(r.confidence_weighted);
  }
  return {mean_of(confident), mean_of(weighted)};
}

std::string signed_percent(double v) { return std::isfinite(v) ? (v >= 0 ? "+" : "") + percent(v) : "-"; }

std::vector<std::string> variant_row(const run::VariantResult& v) {
  const bool heads = v.head_top1_mean.size() > 1;
  const auto seeds = seed_means(v);
  const std::string spread_1 = v.runs.size() > 1 ? " ± " + percent(v.top1_std) : "";
  const std::string spread_5 = v.runs.size() > 1 ? " ± " + percent(v.top5_std) : "";
  std::string per_head;
  for (size_t i = 0; heads && i < v.head_top1_mean.size(); ++i) per_head += (i ? " / " : "") + percent(v.head_top1_mean[i]);
  return {v.name, std::to_string(v.params), std::to_string(v.head_params), percent(v.top1_mean) + spread_1,
          percent(v.top5_mean) + spread_5, heads ? per_head : "-", heads ? percent(v.oracle_mean) : "-",
          heads ? percent(seeds.most_confident) : "-", heads ? percent(seeds.confidence_weighted) : "-",
          percent(v.ensemble_top1), signed_percent(v.ensemble_gain_over_best),
          signed_percent(v.ensemble_gain_over_mean), std::to_string(v.runs.size())};
}

BarGroup variant_bars(const run::VariantResult& v) {
  BarGroup group{v.name, {}, {}};
  const bool heads = v.head_top1_mean.size() > 1;
  for (size_t i = 0; heads && i < v.head_top1_mean.size(); ++i) {
    group.labels.push_back("head " + std::to_string(i + 1));
    group.values.push_back(v.head_top1_mean[i]);
  }
  group.labels.push_back("model (mean)");
  group.values.push_back(v.top1_mean);
  if (heads) {
    group.labels.push_back("oracle");
    group.values.push_back(v.oracle_mean);
  }
  return group;
}

std::string variants_section(const std::vector<run::VariantResult>& compare) {
  std::vector<std::vector<std::string>> rows;
  std::vector<BarGroup> bars;
  for (const auto& v : compare) {
    rows.push_back(variant_row(v));
    bars.push_back(variant_bars(v));
  }
  return "<h2>Variants</h2><p>Top-1/top-5 are mean ± std over seeds (final epoch); parameters as in Table 4; "
         "per-head top-1 and the oracle (a sample counts when any head is right, Section 6) as in Table 2; "
         "most-confident head and confidence-weighted heads are label-free selection policies; the ensemble "
         "averages the softmax of the first two seeds (Table 3); its gain is given over the better member "
         "(how Table 3 computes it) and over the two members' mean.</p>" +
         table({"variant", "params", "head params", "top-1 %", "top-5 %", "per-head top-1 %", "oracle %",
                "most confident %", "conf.-weighted %", "ens. of 2 top-1 %", "gain over better", "gain over mean",
                "seeds"},
               rows) +
         "<h2>Per-head accuracy</h2>" +
         bar_chart_svg(bars, ChartOptions().title("validation top-1 (mean over seeds)").x_label("variant")
                                 .percent(true).width(980));
}

std::string runs_section(const std::vector<RunRecord>& runs) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& run : runs) {
    rows.push_back({run.name, std::to_string(run.epochs.size()), percent(final_metrics(run).top1),
                    run.summary ? percent(run.summary->best_top1) : "-",
                    run.summary ? format_number(run.summary->seconds, 1) : "-", run.summary ? "done" : "unfinished",
                    run.dir});
  }
  return "<h2>Training curves</h2><div class=\"charts\">" +
         runs_chart(runs, [](const auto& e) { return e.val.top1; },
                    ChartOptions().title("validation top-1").percent(true)) +
         runs_chart(runs, [](const auto& e) { return e.val.loss; },
                    ChartOptions().title("validation loss").y_label("cross-entropy")) +
         runs_chart(runs, [](const auto& e) { return e.train_loss; },
                    ChartOptions().title("training loss").y_label("cross-entropy")) +
         runs_chart(runs, [](const auto& e) { return e.train_top1; },
                    ChartOptions().title("training top-1").percent(true)) +
         "</div>" +
         "<h2>Runs</h2>" +
         table({"run", "epochs", "final top-1 %", "best top-1 %", "seconds", "status", "folder"}, rows, 1);
}

// The Grad-CAM figure of the first run of each variant that has one.
std::string figures_section(const std::vector<RunRecord>& runs) {
  std::string figures;
  std::map<std::string, bool> shown;
  for (const auto& run : runs) {
    const std::string variant = run.name.substr(0, run.name.find('/'));
    if (run.gradcam_png.empty() || shown[variant]) continue;
    shown[variant] = true;
    figures += image_figure(run.gradcam_png, run.name);
  }
  return figures.empty() ? "" : "<h2>Grad-CAM per split</h2><p>" + std::string(kGradCamNote) + "</p>" + figures;
}

std::string compare_body(const ReportData& data) {
  return variants_section(*data.compare) + runs_section(data.runs) + figures_section(data.runs);
}

constexpr const char* kStyle = R"css(
body { font-family: sans-serif; color: #222; margin: 24px; max-width: 1260px; background: #fff; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.folder { color: #666; margin-top: 0; font-family: monospace; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.charts { display: flex; flex-wrap: wrap; align-items: flex-start; }
.charts svg { margin: 0 16px 16px 0; border: 1px solid #eee; }
figure { margin: 12px 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 12px; color: #555; }
)css";

}  // namespace

std::string escape_html(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string base64(const std::string& bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t v = 0;
    for (size_t k = 0; k < 3; ++k) v = (v << 8) | (k < n ? static_cast<uint8_t>(bytes[i + k]) : 0u);
    for (size_t k = 0; k < 4; ++k) out += k <= n ? kAlphabet[(v >> (18 - 6 * k)) & 63] : '=';
  }
  return out;
}

std::string render_report(const ReportData& data) {
  std::ostringstream out;
  out << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      << "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src "
         "'unsafe-inline'\">"
      << "<title>" << escape_html(data.title + ": " + data.dir) << "</title><style>" << kStyle
      << "</style></head>\n<body>\n<h1>" << escape_html(data.title) << "</h1><p class=\"folder\">"
      << escape_html(data.dir) << "</p>\n";
  if (data.compare) {
    out << compare_body(data);
  } else if (!data.runs.empty()) {
    out << train_body(data);
  } else {
    out << "<p>No runs found.</p>";
  }
  out << "\n</body></html>\n";
  return out.str();
}

std::string write_report(const std::string& dir) {
  const std::string path = (fs::path(dir) / "report.html").string();
  const ReportData data = load_report_data(dir);
  util::write_file_atomic(path, render_report(data));
  return path;
}

}  // namespace splitshare::report
