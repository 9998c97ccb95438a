#include <splitshare/report/charts.h>
#include <splitshare/report/html.h>
#include <splitshare/report/per_class_section.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace splitshare::report {
namespace {

constexpr int64_t kLabelWidth = 130;  // row labels (true class)
constexpr int64_t kLabelHeight = 110;  // column labels (predicted class), rotated
constexpr int64_t kMaxLabelChars = 20;

std::string short_label(const std::string& name) {
  return name.size() <= kMaxLabelChars ? name : name.substr(0, kMaxLabelChars - 3) + "...";
}

std::string percent(double v) { return format_number(100.0 * v, 2); }

// White to dark blue with the share of the row.
std::string shade(double share) {
  const auto mix = [share](int from, int to) { return static_cast<int>(from + (to - from) * share + 0.5); };
  char buf[16];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", mix(255, 8), mix(255, 48), mix(255, 107));
  return buf;
}

std::string cells_svg(const eval::PerClassReport& r, int64_t cell) {
  const auto counts = r.confusion.to(torch::kCPU, torch::kLong).contiguous();
  const auto* c = counts.data_ptr<int64_t>();
  const int64_t k = counts.size(0);
  const bool numbers = k <= 20;
  std::ostringstream out;
  for (int64_t i = 0; i < k; ++i) {
    int64_t support = 0;
    for (int64_t j = 0; j < k; ++j) support += c[i * k + j];
    for (int64_t j = 0; j < k; ++j) {
      const int64_t n = c[i * k + j];
      const double share = support > 0 ? static_cast<double>(n) / support : 0.0;
      const int64_t x = kLabelWidth + j * cell, y = kLabelHeight + i * cell;
      out << "<rect x=\"" << x << "\" y=\"" << y << "\" width=\"" << cell << "\" height=\"" << cell << "\" fill=\""
          << shade(share) << "\" stroke=\"#ddd\" stroke-width=\"0.5\"><title>"
          << escape_html(r.classes[i] + " -> " + r.classes[j] + ": " + std::to_string(n) + " (" + percent(share) +
                         " % of " + r.classes[i] + ")")
          << "</title></rect>";
      if (numbers && n > 0) {
        out << "<text x=\"" << x + cell / 2 << "\" y=\"" << y + cell / 2 + 4 << "\" text-anchor=\"middle\" fill=\""
            << (share > 0.5 ? "#fff" : "#222") << "\">" << n << "</text>";
      }
    }
  }
  return out.str();
}

std::string labels_svg(const eval::PerClassReport& r, int64_t cell) {
  std::ostringstream out;
  const auto k = static_cast<int64_t>(r.classes.size());
  for (int64_t i = 0; i < k; ++i) {
    const auto name = escape_html(short_label(r.classes[i]));
    const int64_t middle = i * cell + cell / 2 + 4;
    out << "<text x=\"" << kLabelWidth - 4 << "\" y=\"" << kLabelHeight + middle << "\" text-anchor=\"end\">" << name
        << "</text>";
    out << "<text transform=\"translate(" << kLabelWidth + middle << "," << kLabelHeight - 4
        << ") rotate(-90)\">" << name << "</text>";
  }
  return out.str();
}

std::string scores_row(const eval::ClassScores& s, const std::string& name, const std::vector<std::string>& extra) {
  std::string row = "<tr><td>" + escape_html(name) + "</td>";
  for (const auto& v : {percent(s.precision), percent(s.recall), percent(s.f1), std::to_string(s.support)}) {
    row += "<td class=\"num\">" + v + "</td>";
  }
  for (const auto& v : extra) row += "<td class=\"num\">" + v + "</td>";
  return row + "</tr>";
}

std::string scores_table(const eval::PerClassReport& r) {
  auto order = r.per_class;
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.recall < b.recall; });
  const size_t heads = r.head_recall.size() > 1 ? r.head_recall.size() : 0;
  std::string out = "<table><thead><tr><th>class</th><th>precision %</th><th>recall %</th><th>F1 %</th>"
                    "<th>support</th>";
  for (size_t h = 0; h < heads; ++h) out += "<th>head " + std::to_string(h + 1) + " recall %</th>";
  out += "</tr></thead><tbody>";
  for (const auto& s : order) {
    std::vector<std::string> extra;
    for (size_t h = 0; h < heads; ++h) extra.push_back(percent(r.head_recall[h].at(s.index)));
    out += scores_row(s, s.name, extra);
  }
  const std::vector<std::string> blank(heads, "");
  out += scores_row(r.macro, "macro average", blank) + scores_row(r.weighted, "weighted average", blank);
  return out + "</tbody></table>";
}

std::string pairs_table(const eval::PerClassReport& r) {
  if (r.confused_pairs.empty()) return "";
  std::string out = "<h3>Most confused pairs</h3><table><thead><tr><th>true class</th><th>predicted as</th>"
                    "<th>count</th><th>% of true class</th></tr></thead><tbody>";
  for (const auto& p : r.confused_pairs) {
    out += "<tr><td>" + escape_html(p.truth_name) + "</td><td>" + escape_html(p.predicted_name) +
           "</td><td class=\"num\">" + std::to_string(p.count) + "</td><td class=\"num\">" + percent(p.rate) +
           "</td></tr>";
  }
  return out + "</tbody></table>";
}

}  // namespace

std::string confusion_heatmap_svg(const eval::PerClassReport& r) {
  const auto k = static_cast<int64_t>(r.classes.size());
  if (k == 0 || k > kMaxHeatmapClasses) return "";
  TORCH_CHECK(r.confusion.dim() == 2 && r.confusion.size(0) == k && r.confusion.size(1) == k,
              "confusion_heatmap_svg: ", k, " classes but a confusion matrix of ", r.confusion.sizes());
  const int64_t cell = std::clamp<int64_t>(520 / k, 5, 40);
  const int64_t width = kLabelWidth + k * cell + 10, height = kLabelHeight + k * cell + 24;
  std::ostringstream out;
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"heatmap\" width=\"" << width << "\" height=\"" << height
      << "\" viewBox=\"0 0 " << width << " " << height << "\" font-family=\"sans-serif\" font-size=\""
      << (cell >= 14 ? 11 : 8) << "\" role=\"img\"><title>confusion matrix</title>"
      << "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>" << cells_svg(r, cell) << labels_svg(r, cell)
      << "<text x=\"" << kLabelWidth << "\" y=\"" << height - 6
      << "\" font-size=\"11\">rows: true class; columns: predicted; shade: share of the row</text></svg>";
  return out.str();
}

std::string per_class_section(const eval::PerClassReport& r) {
  const auto heatmap = confusion_heatmap_svg(r);
  return "<h2>Per-class validation metrics (last epoch)</h2>" +
         (heatmap.empty() ? "<p>" + std::to_string(r.classes.size()) + " classes: too many for a heat map.</p>"
                          : "<div class=\"charts\">" + heatmap + "</div>") +
         "<p>Sorted worst recall first. Precision is 0 for a class that is never predicted; the macro average "
         "is over the classes that occur in the labels or the predictions.</p>" +
         scores_table(r) + pairs_table(r);
}

}  // namespace splitshare::report
