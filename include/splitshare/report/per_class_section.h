#pragma once

#include <splitshare/eval/per_class.h>

#include <cstdint>
#include <string>

namespace splitshare::report {

/// Classes up to which confusion_heatmap_svg draws a heat map (K x K cells).
inline constexpr int64_t kMaxHeatmapClasses = 100;

/// An inline <svg> heat map of `report.confusion`: rows = true class, columns = predicted,
/// each cell shaded by its share of the row (so the diagonal reads as recall), with the
/// count printed in the cell for up to 20 classes and a <title> tooltip per cell. Empty
/// when there are more than kMaxHeatmapClasses classes.
std::string confusion_heatmap_svg(const eval::PerClassReport& report);

/// The report section of a run's per-class figures: the heat map, a table of precision,
/// recall, F1 and support (and each head's recall) sorted worst recall first, with the
/// macro and weighted averages, and the most confused pairs.
std::string per_class_section(const eval::PerClassReport& report);

}  // namespace splitshare::report
