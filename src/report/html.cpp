#include <splitshare/explain/figure.h>
#include <splitshare/explain/image_write.h>
#include <splitshare/report/html.h>
#include <splitshare/train/checkpoint.h>
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
using nlohmann::json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
std::string percent(double v, int precision = 2) { return std::isfinite(v) ? format_number(100.0 * v, precision) : "-"; }

// A JSON number at `key` (NaN when absent, null or not a number).
double value(const json& j, const char* key) {
  if (!j.is_object()) return kNaN;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : kNaN;
}

std::string text(const json& j, const char* key, const std::string& fallback = "") {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return it->is_string() ? it->get<std::string>() : it->dump();
}

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

std::vector<double> epoch_values(const RunRecord& run, const std::function<double(const json&)>& get) {
  std::vector<double> v;
  for (const auto& e : run.epochs) v.push_back(get(e));
  return v;
}

std::vector<double> epoch_numbers(const RunRecord& run) {
  std::vector<double> x;
  for (size_t i = 0; i < run.epochs.size(); ++i) {
    const double e = value(run.epochs[i], "epoch");
    x.push_back(std::isfinite(e) ? e : static_cast<double>(i + 1));
  }
  return x;
}

// Per-epoch curves of several runs (compare) for one quantity.
std::string runs_chart(const std::vector<RunRecord>& runs, const std::function<double(const json&)>& get,
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
json final_metrics(const RunRecord& run) {
  if (run.summary.is_object()) {
    const auto final = run.summary.value("final", json());
    if (final.is_object() && final.contains("val")) return final["val"];
  }
  if (!run.epochs.empty() && run.epochs.back().is_object()) return run.epochs.back().value("val", json());
  return json();
}

std::vector<double> head_top1(const json& metrics) {
  std::vector<double> heads;
  if (metrics.is_object() && metrics.contains("heads") && metrics["heads"].is_array()) {
    for (const auto& h : metrics["heads"]) heads.push_back(value(h, "top1"));
  }
  return heads;
}

double selection(const json& metrics, const char* policy) {
  return metrics.is_object() && metrics.contains("selection") ? value(metrics["selection"], policy) : kNaN;
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

using EpochField = std::function<double(const json&)>;

// A number of each metrics.jsonl line (e.g. "train_loss") or of its "val" object.
EpochField field(const char* key) {
  return [key](const json& e) { return value(e, key); };
}
EpochField val_field(const char* key) {
  return [key](const json& e) { return value(e.value("val", json()), key); };
}
EpochField val_head(size_t head) {
  return [head](const json& e) {
    const auto v = head_top1(e.value("val", json()));
    return head < v.size() ? v[head] : kNaN;
  };
}

Series curve(const RunRecord& run, const std::string& name, const EpochField& get, bool dashed = false) {
  return {name, epoch_numbers(run), epoch_values(run, get), dashed};
}

std::string model_section(const RunRecord& run) {
  const json model = run.summary.is_object() ? run.summary.value("model", json()) : json();
  const std::string head = text(model, "head", "?");
  std::vector<std::vector<std::string>> rows = {
      {"architecture", text(model, "arch", "?")},
      {"head", head + (head == "ssm" ? ", " + text(model, "splits") + " splits" : "")},
      {"parameters", text(run.summary, "params", "-") + " (head " + text(run.summary, "head_params", "-") + ")"},
      {"epochs", std::to_string(run.epochs.size())},
      {"training time", format_number(value(run.summary, "seconds"), 1) + " s"},
  };
  const json classes = model.is_object() ? model.value("classes", json()) : json();
  if (classes.is_array()) {
    std::string names;
    for (const auto& c : classes) {
      names += (names.empty() ? "" : ", ") + (c.is_string() ? c.get<std::string>() : c.dump());
    }
    rows.push_back({"classes", names});
  }
  return "<h2>Model</h2>" + table({}, rows, 2);
}

std::string metrics_section(const RunRecord& run, const json& m) {
  std::vector<std::vector<std::string>> rows = {
      {"top-1 %", percent(value(m, "top1"))},
      {"top-5 %", percent(value(m, "top5"))},
      {"loss", format_number(value(m, "loss"), 4)},
      {"best top-1 %",
       percent(value(run.summary, "best_top1")) + " (epoch " + text(run.summary, "best_epoch", "-") + ")"},
      {"samples", text(m, "samples", "-")}};
  const auto heads = head_top1(m);
  if (heads.size() > 1) {
    for (size_t h = 0; h < heads.size(); ++h) {
      rows.push_back({"head " + std::to_string(h + 1) + " top-1 %", percent(heads[h])});
    }
    rows.push_back({"oracle % (any head right)", percent(value(m, "oracle"))});
    rows.push_back({"most-confident head %", percent(selection(m, "most_confident"))});
    rows.push_back({"confidence-weighted heads %", percent(selection(m, "confidence_weighted"))});
  }
  return "<h2>Final validation metrics</h2>" + table({"metric", "value"}, rows);
}

// Each head's top-1 next to the label-free selection policies and the oracle.
std::string heads_section(const RunRecord& run, const json& m) {
  const auto heads = head_top1(m);
  if (heads.size() < 2) return "";
  BarGroup group{run.name, {}, {}};
  for (size_t h = 0; h < heads.size(); ++h) {
    group.labels.push_back("head " + std::to_string(h + 1));
    group.values.push_back(heads[h]);
  }
  for (auto [label, policy] : {std::pair{"mean (model)", "mean"}, std::pair{"most confident", "most_confident"},
                               std::pair{"conf.-weighted", "confidence_weighted"}, std::pair{"oracle", "oracle"}}) {
    group.labels.push_back(label);
    group.values.push_back(selection(m, policy));
  }
  return "<h2>Per-head accuracy</h2>" +
         bar_chart_svg({group}, ChartOptions().title("validation top-1 by head and selection policy").x_label("")
                                    .percent(true).width(760));
}

std::string curves_section(const RunRecord& run, size_t heads) {
  std::vector<Series> accuracy = {curve(run, "train top-1", field("train_top1"), true),
                                  curve(run, "validation top-1", val_field("top1")),
                                  curve(run, "validation top-5", val_field("top5"))};
  for (size_t h = 0; heads > 1 && h < heads; ++h) {
    accuracy.push_back(curve(run, "head " + std::to_string(h + 1) + " top-1", val_head(h)));
  }
  return "<h2>Training curves</h2><div class=\"charts\">" +
         line_chart_svg({curve(run, "train loss", field("train_loss"), true),
                         curve(run, "validation loss", val_field("loss"))},
                        ChartOptions().title("loss").y_label("cross-entropy")) +
         line_chart_svg(accuracy, ChartOptions().title("accuracy").percent(true)) +
         line_chart_svg({curve(run, "learning rate", field("lr"))},
                        ChartOptions().title("learning rate (end of epoch)").y_label("lr")) +
         "</div>";
}

std::string train_body(const ReportData& data) {
  const auto& run = data.runs.at(0);
  const json m = final_metrics(run);
  std::string out = model_section(run) + metrics_section(run, m) + heads_section(run, m) +
                    curves_section(run, head_top1(m).size());
  if (!run.gradcam_png.empty()) {
    out += "<h2>Grad-CAM per split</h2><p>" + std::string(kGradCamNote) + "</p>" +
           image_figure(run.gradcam_png, run.name);
  }
  return out;
}

// One row of compare.json, averaged over its seeds.
struct VariantSummary {
  std::string name;
  int64_t seeds = 0;
  std::vector<double> heads;  // mean top-1 of each head (empty for a single head)
  double oracle = kNaN, most_confident = kNaN, confidence_weighted = kNaN;
  double ensemble = kNaN, gain = kNaN;
};

VariantSummary summarize_variant(const json& v) {
  VariantSummary s;
  s.name = text(v, "variant", "?");
  const json runs = v.value("runs", json::array());
  s.seeds = static_cast<int64_t>(runs.size());
  std::vector<double> oracle, confident, weighted;
  std::vector<std::vector<double>> heads;
  for (const auto& r : runs) {
    const auto h = head_top1(r);
    if (heads.size() < h.size()) heads.resize(h.size());
    for (size_t i = 0; i < h.size(); ++i) heads[i].push_back(h[i]);
    oracle.push_back(value(r, "oracle"));
    confident.push_back(selection(r, "most_confident"));
    weighted.push_back(selection(r, "confidence_weighted"));
  }
  if (heads.size() > 1) {
    for (const auto& h : heads) s.heads.push_back(mean_of(h));
    s.oracle = mean_of(oracle);
    s.most_confident = mean_of(confident);
    s.confidence_weighted = mean_of(weighted);
  }
  s.ensemble = value(v, "ensemble_top1");
  s.gain = value(v, "ensemble_gain");
  if (!std::isfinite(s.gain) && std::isfinite(s.ensemble) && runs.size() >= 2) {  // older compare.json
    s.gain = s.ensemble - 0.5 * (value(runs[0], "top1") + value(runs[1], "top1"));
  }
  return s;
}

std::vector<std::string> variant_row(const json& v, const VariantSummary& s) {
  const std::string spread_1 = s.seeds > 1 ? " ± " + percent(value(v, "top1_std")) : "";
  const std::string spread_5 = s.seeds > 1 ? " ± " + percent(value(v, "top5_std")) : "";
  std::string heads;
  for (size_t i = 0; i < s.heads.size(); ++i) heads += (i ? " / " : "") + percent(s.heads[i]);
  return {s.name, text(v, "params", "-"), text(v, "head_params", "-"), percent(value(v, "top1_mean")) + spread_1,
          percent(value(v, "top5_mean")) + spread_5, heads.empty() ? "-" : heads, percent(s.oracle),
          percent(s.most_confident), percent(s.confidence_weighted), percent(s.ensemble),
          std::isfinite(s.gain) ? (s.gain >= 0 ? "+" : "") + percent(s.gain) : "-", std::to_string(s.seeds)};
}

BarGroup variant_bars(const json& v, const VariantSummary& s) {
  BarGroup group{s.name, {}, {}};
  for (size_t i = 0; i < s.heads.size(); ++i) {
    group.labels.push_back("head " + std::to_string(i + 1));
    group.values.push_back(s.heads[i]);
  }
  group.labels.push_back("model (mean)");
  group.values.push_back(value(v, "top1_mean"));
  if (!s.heads.empty()) {
    group.labels.push_back("oracle");
    group.values.push_back(s.oracle);
  }
  return group;
}

std::string variants_section(const json& compare) {
  std::vector<std::vector<std::string>> rows;
  std::vector<BarGroup> bars;
  for (const auto& v : compare.value("variants", json::array())) {
    const auto s = summarize_variant(v);
    rows.push_back(variant_row(v, s));
    bars.push_back(variant_bars(v, s));
  }
  return "<h2>Variants</h2><p>Top-1/top-5 are mean ± std over seeds (final epoch); parameters as in Table 4; "
         "per-head top-1 and the oracle (a sample counts when any head is right, Section 6) as in Table 2; "
         "most-confident head and confidence-weighted heads are label-free selection policies; the ensemble "
         "averages the softmax of the first two seeds (Table 3), its gain is over the two members' mean.</p>" +
         table({"variant", "params", "head params", "top-1 %", "top-5 %", "per-head top-1 %", "oracle %",
                "most confident %", "conf.-weighted %", "ens. of 2 top-1 %", "ens. gain", "seeds"},
               rows) +
         "<h2>Per-head accuracy</h2>" +
         bar_chart_svg(bars, ChartOptions().title("validation top-1 (mean over seeds)").x_label("variant")
                                 .percent(true).width(980));
}

std::string runs_section(const std::vector<RunRecord>& runs) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& run : runs) {
    const json m = final_metrics(run);
    rows.push_back({run.name, std::to_string(run.epochs.size()), percent(value(m, "top1")),
                    percent(value(run.summary, "best_top1")), format_number(value(run.summary, "seconds"), 1),
                    run.summary.is_null() ? "unfinished" : "done", run.dir});
  }
  return "<h2>Training curves</h2><div class=\"charts\">" +
         runs_chart(runs, val_field("top1"), ChartOptions().title("validation top-1").percent(true)) +
         runs_chart(runs, val_field("loss"), ChartOptions().title("validation loss").y_label("cross-entropy")) +
         runs_chart(runs, field("train_loss"), ChartOptions().title("training loss").y_label("cross-entropy")) +
         runs_chart(runs, field("train_top1"), ChartOptions().title("training top-1").percent(true)) + "</div>" +
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
  return variants_section(data.compare) + runs_section(data.runs) + figures_section(data.runs);
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
  if (!data.compare.is_null()) {
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
  std::string html;
  try {
    html = render_report(data);
  } catch (const json::exception& e) {
    // Valid JSON whose fields have other types or shapes than a run writes (edited by hand?).
    TORCH_CHECK(false, "report: the summary.json, metrics.jsonl or compare.json files in ", dir,
                " do not have the fields a run writes: ", e.what());
  }
  util::write_file_atomic(path, html);
  return path;
}

void write_gradcam_figure(nn::ClassifierImpl& model, data::DataBundle& data, const std::string& dir,
                          int64_t count) {
  TORCH_CHECK(data.val, "write_gradcam_figure: the data bundle has no validation stream");
  const auto grid = explain::validation_grid(model, *data.val, data.preprocess, data.classes, count);
  explain::write_png((fs::path(dir) / "gradcam.png").string(), grid);
}

void write_compare_figures(const std::string& out_dir, const std::vector<train::VariantResult>& results,
                           data::DataBundle& data, int64_t count) {
  for (const auto& variant : results) {
    if (variant.seeds.empty()) continue;
    const auto dir = fs::path(out_dir) / variant.name / ("seed-" + std::to_string(variant.seeds[0]));
    auto loaded = train::load_checkpoint((dir / "checkpoint.pt").string());
    write_gradcam_figure(*loaded.model, data, dir.string(), count);
  }
}

}  // namespace splitshare::report
