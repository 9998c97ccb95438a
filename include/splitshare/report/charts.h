#pragma once

#include <torch/arg.h>

#include <cstdint>
#include <string>
#include <vector>

namespace splitshare::report {

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

/// `value` with `precision` decimals, or "-" when it is not finite.
std::string format_number(double value, int precision);

}  // namespace splitshare::report
