#include <splitshare/report/charts.h>
#include <splitshare/report/html.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace splitshare::report {
namespace {

// matplotlib's tab10.
constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
constexpr int64_t kPaletteSize = sizeof kPalette / sizeof kPalette[0];
constexpr int64_t kLegendItemWidth = 190;
constexpr int64_t kLegendRowHeight = 16;

const char* colour(size_t i) { return kPalette[i % kPaletteSize]; }

}  // namespace

std::string format_number(double v, int precision) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", precision, v);
  return buf;
}


namespace {

// ---- chart geometry ----

double nice_step(double range, int target_ticks) {
  if (!(range > 0)) return 1.0;
  const double raw = range / target_ticks;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= m * magnitude) return m * magnitude;
  }
  return 10.0 * magnitude;
}

struct Axis {
  double lo = 0, hi = 1, step = 0.2;
};

Axis nice_axis(double lo, double hi, int ticks, bool integer) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (hi - lo <= 0) {
    const double pad = std::abs(lo) > 0 ? std::abs(lo) * 0.05 : 0.5;
    lo -= pad;
    hi += pad;
  }
  Axis a;
  a.step = nice_step(hi - lo, ticks);
  if (integer) a.step = std::max(1.0, std::round(a.step));
  a.lo = std::floor(lo / a.step + 1e-9) * a.step;
  a.hi = std::ceil(hi / a.step - 1e-9) * a.step;
  if (a.hi <= a.lo) a.hi = a.lo + a.step;
  return a;
}

int decimals_for(double step) {
  if (step >= 1) return 0;
  return std::min(6, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
}

struct Frame {
  int64_t left = 58, right = 16, top = 30, bottom = 42;
  int64_t width = 0, height = 0;
  int64_t plot_w() const { return width - left - right; }
  int64_t plot_h() const { return height - top - bottom; }
};

std::string svg_open(int64_t width, int64_t height, const std::string& title) {
  std::ostringstream out;
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
      << "\" viewBox=\"0 0 " << width << ' ' << height << "\" role=\"img\" font-family=\"sans-serif\" font-size=\"11\">"
      << "<title>" << escape_html(title) << "</title>"
      << "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>";
  return out.str();
}

// Y axis with grid lines and tick labels, the frame, the title and the axis titles.
std::string axes(const Frame& f, const Axis& y, const ChartOptions& options) {
  std::ostringstream out;
  const double scale = options.percent() ? 100.0 : 1.0;
  const int digits = decimals_for(y.step * scale);
  for (double t = y.lo; t <= y.hi + y.step * 1e-6; t += y.step) {
    const double py = f.top + f.plot_h() * (1.0 - (t - y.lo) / (y.hi - y.lo));
    out << "<line x1=\"" << f.left << "\" x2=\"" << f.left + f.plot_w() << "\" y1=\"" << format_number(py, 1) << "\" y2=\""
        << format_number(py, 1) << "\" stroke=\"#e4e4e4\"/>"
        << "<text x=\"" << f.left - 6 << "\" y=\"" << format_number(py + 4, 1) << "\" text-anchor=\"end\" fill=\"#333\">"
        << format_number(t * scale, digits) << "</text>";
  }
  out << "<rect x=\"" << f.left << "\" y=\"" << f.top << "\" width=\"" << f.plot_w() << "\" height=\"" << f.plot_h()
      << "\" fill=\"none\" stroke=\"#888\"/>";
  out << "<text x=\"" << f.left << "\" y=\"18\" font-size=\"13\" font-weight=\"bold\" fill=\"#222\">"
      << escape_html(options.title()) << "</text>";
  out << "<text x=\"" << f.left + f.plot_w() / 2 << "\" y=\"" << f.height - 8
      << "\" text-anchor=\"middle\" fill=\"#333\">" << escape_html(options.x_label()) << "</text>";
  const std::string y_label = options.y_label() + (options.percent() && options.y_label().empty() ? "%" : "");
  out << "<text transform=\"translate(14 " << f.top + f.plot_h() / 2 << ") rotate(-90)\" text-anchor=\"middle\" "
      << "fill=\"#333\">" << escape_html(y_label) << "</text>";
  return out.str();
}

std::string legend(const std::vector<std::pair<std::string, std::string>>& items, const std::vector<bool>& dashed,
                   int64_t top, int64_t width) {
  std::ostringstream out;
  const int64_t per_row = std::max<int64_t>(1, (width - 20) / kLegendItemWidth);
  for (size_t i = 0; i < items.size(); ++i) {
    const int64_t x = 20 + static_cast<int64_t>(i % per_row) * kLegendItemWidth;
    const int64_t y = top + static_cast<int64_t>(i / per_row) * kLegendRowHeight;
    out << "<line x1=\"" << x << "\" x2=\"" << x + 22 << "\" y1=\"" << y + 6 << "\" y2=\"" << y + 6
        << "\" stroke=\"" << items[i].second << "\" stroke-width=\"3\""
        << (i < dashed.size() && dashed[i] ? " stroke-dasharray=\"5 3\"" : "") << "/>"
        << "<text x=\"" << x + 28 << "\" y=\"" << y + 10 << "\" fill=\"#222\">" << escape_html(items[i].first)
        << "</text>";
  }
  return out.str();
}

int64_t legend_height(size_t items, int64_t width) {
  if (items == 0) return 0;
  const int64_t per_row = std::max<int64_t>(1, (width - 20) / kLegendItemWidth);
  return (static_cast<int64_t>(items) + per_row - 1) / per_row * kLegendRowHeight + 8;
}

}  // namespace

std::string line_chart_svg(const std::vector<Series>& series, const ChartOptions& options) {
  Frame f;
  f.width = options.width();
  f.height = options.height();
  TORCH_CHECK(f.plot_w() > 20 && f.plot_h() > 20, "line_chart_svg: chart too small: ", f.width, "x", f.height);
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
  bool integer_x = true;
  for (const auto& s : series) {
    TORCH_CHECK(s.x.size() == s.y.size(), "line_chart_svg: series '", s.name, "' has ", s.x.size(), " x and ",
                s.y.size(), " y values");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x_lo = std::min(x_lo, s.x[i]);
      x_hi = std::max(x_hi, s.x[i]);
      y_lo = std::min(y_lo, s.y[i]);
      y_hi = std::max(y_hi, s.y[i]);
      integer_x = integer_x && s.x[i] == std::round(s.x[i]);
    }
  }
  const Axis xa = nice_axis(x_lo, x_hi, 8, integer_x);
  const Axis ya = nice_axis(y_lo, y_hi, 5, false);
  auto px = [&](double x) { return f.left + f.plot_w() * (x - xa.lo) / (xa.hi - xa.lo); };
  auto py = [&](double y) { return f.top + f.plot_h() * (1.0 - (y - ya.lo) / (ya.hi - ya.lo)); };

  const int64_t legend_h = legend_height(series.size(), f.width);
  std::ostringstream out;
  out << svg_open(f.width, f.height + legend_h, options.title()) << axes(f, ya, options);
  const int x_digits = decimals_for(xa.step);
  for (double t = xa.lo; t <= xa.hi + xa.step * 1e-6; t += xa.step) {
    out << "<text x=\"" << format_number(px(t), 1) << "\" y=\"" << f.top + f.plot_h() + 15
        << "\" text-anchor=\"middle\" fill=\"#333\">" << format_number(t, x_digits) << "</text>";
  }
  std::vector<std::pair<std::string, std::string>> items;
  std::vector<bool> dashed;
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const char* stroke = colour(s.colour >= 0 ? static_cast<size_t>(s.colour) : k);
    std::ostringstream points, dots;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      points << format_number(px(s.x[i]), 1) << ',' << format_number(py(s.y[i]), 1) << ' ';
      dots << "<circle cx=\"" << format_number(px(s.x[i]), 1) << "\" cy=\"" << format_number(py(s.y[i]), 1) << "\" r=\"2.5\" fill=\""
           << stroke << "\"/>";
    }
    out << "<polyline fill=\"none\" stroke=\"" << stroke << "\" stroke-width=\"2\""
        << (s.dashed ? " stroke-dasharray=\"5 3\"" : "") << " points=\"" << points.str() << "\"><title>"
        << escape_html(s.name) << "</title></polyline>" << dots.str();
    items.emplace_back(s.name, stroke);
    dashed.push_back(s.dashed);
  }
  out << legend(items, dashed, f.height + 2, f.width) << "</svg>";
  return out.str();
}

std::string bar_chart_svg(const std::vector<BarGroup>& groups, const ChartOptions& options) {
  Frame f;
  f.width = options.width();
  f.height = options.height();
  TORCH_CHECK(f.plot_w() > 20 && f.plot_h() > 20, "bar_chart_svg: chart too small: ", f.width, "x", f.height);
  std::vector<std::string> labels;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  size_t widest = 1;
  for (const auto& g : groups) {
    TORCH_CHECK(g.labels.size() == g.values.size(), "bar_chart_svg: group '", g.name, "' has ", g.labels.size(),
                " labels and ", g.values.size(), " values");
    widest = std::max(widest, g.values.size());
    for (size_t i = 0; i < g.labels.size(); ++i) {
      if (std::find(labels.begin(), labels.end(), g.labels[i]) == labels.end()) labels.push_back(g.labels[i]);
      if (!std::isfinite(g.values[i])) continue;
      lo = std::min(lo, g.values[i]);
      hi = std::max(hi, g.values[i]);
    }
  }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  // Accuracies of similar heads sit in a narrow band: start the axis below the band
  // instead of at zero so that the differences are visible (the tick labels say so).
  double base = std::min(0.0, lo);
  if (lo > 0 && hi - lo < 0.25 * hi) base = std::max(0.0, lo - (hi - lo) - 0.02 * hi);
  const Axis ya = nice_axis(base, hi, 5, false);
  auto py = [&](double y) { return f.top + f.plot_h() * (1.0 - (y - ya.lo) / (ya.hi - ya.lo)); };

  const int64_t legend_h = legend_height(labels.size(), f.width);
  std::ostringstream out;
  out << svg_open(f.width, f.height + legend_h, options.title()) << axes(f, ya, options);
  const double group_w = static_cast<double>(f.plot_w()) / std::max<size_t>(1, groups.size());
  const double bar_w = group_w * 0.8 / static_cast<double>(widest);
  const double scale = options.percent() ? 100.0 : 1.0;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const auto& g = groups[gi];
    const double start = f.left + gi * group_w + (group_w - bar_w * g.values.size()) / 2;
    for (size_t i = 0; i < g.values.size(); ++i) {
      if (!std::isfinite(g.values[i])) continue;
      const size_t c = std::find(labels.begin(), labels.end(), g.labels[i]) - labels.begin();
      const double top = py(std::max(g.values[i], ya.lo));
      const double x = start + i * bar_w;
      out << "<rect x=\"" << format_number(x + 1, 1) << "\" y=\"" << format_number(top, 1) << "\" width=\""
          << format_number(std::max(1.0, bar_w - 2), 1) << "\" height=\"" << format_number(f.top + f.plot_h() - top, 1)
          << "\" fill=\"" << colour(c) << "\"><title>" << escape_html(g.name + " " + g.labels[i]) << ": "
          << format_number(g.values[i] * scale, 2) << "</title></rect>";
      if (bar_w >= 26) {
        out << "<text x=\"" << format_number(x + bar_w / 2, 1) << "\" y=\"" << format_number(top - 3, 1)
            << "\" text-anchor=\"middle\" font-size=\"9\" fill=\"#333\">" << format_number(g.values[i] * scale, 1)
            << "</text>";
      }
    }
    out << "<text x=\"" << format_number(f.left + (gi + 0.5) * group_w, 1) << "\" y=\"" << f.top + f.plot_h() + 15
        << "\" text-anchor=\"middle\" fill=\"#333\">" << escape_html(g.name) << "</text>";
  }
  std::vector<std::pair<std::string, std::string>> items;
  for (size_t i = 0; i < labels.size(); ++i) items.emplace_back(labels[i], colour(i));
  out << legend(items, {}, f.height + 2, f.width) << "</svg>";
  return out.str();
}

}  // namespace splitshare::report
