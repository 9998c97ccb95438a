#pragma once

#include <splitshare/data/source.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/train/compare.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace splitshare::report {

/// Escapes &, <, >, " and ' so that `text` is safe in HTML text and attribute values.
std::string escape_html(const std::string& text);

/// Standard base64 (RFC 4648, with padding), for data: URLs.
std::string base64(const std::string& bytes);

/// One curve of a line chart; points with a non-finite y are skipped.
struct Series {
  std::string name;
  std::vector<double> x;
  std::vector<double> y;
  /// Drawn dashed (e.g. training curves next to validation ones).
  bool dashed = false;
  /// Index into the palette; -1 = the series' position.
  int64_t colour = -1;
};

/// Titles and size of a chart.
///
/// ```
/// auto svg = line_chart_svg(series, ChartOptions().title("validation top-1").y_label("%").percent(true));
/// ```
struct ChartOptions {
  TORCH_ARG(std::string, title) = "";
  TORCH_ARG(std::string, x_label) = "epoch";
  TORCH_ARG(std::string, y_label) = "";
  /// Size of the plot in CSS pixels (the legend is added below it).
  TORCH_ARG(int64_t, width) = 560;
  TORCH_ARG(int64_t, height) = 280;
  /// Values are fractions shown as percentages.
  TORCH_ARG(bool, percent) = false;
};

/// An inline, self-contained <svg> line chart with axes, ticks, grid lines and a legend.
std::string line_chart_svg(const std::vector<Series>& series, const ChartOptions& options);

/// The bars of one group in a grouped bar chart (e.g. one model: its heads, the mean and the oracle).
struct BarGroup {
  std::string name;
  std::vector<std::string> labels;
  std::vector<double> values;
};

/// An inline <svg> grouped bar chart; bars with the same label share a colour. The y
/// axis starts at zero unless all values lie in a narrow band far above it.
std::string bar_chart_svg(const std::vector<BarGroup>& groups, const ChartOptions& options);

/// One training run as saved on disk by `fit`.
struct RunRecord {
  /// "train" or "<variant>/seed-<n>".
  std::string name;
  std::string dir;
  /// metrics.jsonl, one object per epoch, in order.
  std::vector<nlohmann::json> epochs;
  /// summary.json, or null when the run has not finished.
  nlohmann::json summary;
  /// The run's Grad-CAM figure (gradcam.png) as PNG bytes; empty when absent.
  std::string gradcam_png;
};

/// Everything a report shows.
struct ReportData {
  std::string title;
  /// The folder the report describes (shown, escaped).
  std::string dir;
  std::vector<RunRecord> runs;
  /// compare.json for a comparison, null for a single training run.
  nlohmann::json compare;
};

/// Reads a `train` output folder (metrics.jsonl, summary.json, gradcam.png) or a
/// `compare` output folder (compare.json and OUT/<variant>/seed-<n>/…). Throws naming
/// the folder when it holds neither, or a file that does not parse.
ReportData load_report_data(const std::string& dir);

/// The self-contained report: no scripts and no external resources (charts are inline
/// SVG, images are data: URLs); every string from the data is escaped.
std::string render_report(const ReportData& data);

/// load_report_data + render_report, written to DIR/report.html (atomically); returns the path.
std::string write_report(const std::string& dir);

/// Saves the Grad-CAM figure of the first `count` validation images (their true
/// labels) as DIR/gradcam.png, for the report.
void write_gradcam_figure(nn::ClassifierImpl& model, data::DataBundle& data, const std::string& dir,
                          int64_t count = 4);

/// write_gradcam_figure for the first seed of every variant of a finished compare, from
/// its checkpoint (OUT/<variant>/seed-<seed>/checkpoint.pt -> gradcam.png beside it).
void write_compare_figures(const std::string& out_dir, const std::vector<train::VariantResult>& results,
                           data::DataBundle& data, int64_t count = 4);

}  // namespace splitshare::report
