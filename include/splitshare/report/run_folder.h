#pragma once

#include <splitshare/eval/per_class.h>
#include <splitshare/run/records.h>

#include <optional>
#include <string>
#include <vector>

namespace splitshare::report {

/// One training run as saved on disk by `fit`.
struct RunRecord {
  /// "train" or "<variant>/seed-<n>".
  std::string name;
  std::string dir;
  /// metrics.jsonl, one record per epoch, in order.
  std::vector<run::EpochRecord> epochs;
  /// summary.json; empty while the run has not finished.
  std::optional<run::RunSummary> summary;
  /// The run's Grad-CAM figure (gradcam.png) as PNG bytes; empty when absent.
  std::string gradcam_png;
  /// per_class.json: the last epoch's per-class validation figures; empty when absent
  /// (runs trained before it was written).
  std::optional<eval::PerClassReport> per_class;
};

/// Everything a report shows.
struct ReportData {
  std::string title;
  /// The folder the report describes (shown, escaped).
  std::string dir;
  std::vector<RunRecord> runs;
  /// compare.json for a comparison; empty for a single training run.
  std::optional<std::vector<run::VariantResult>> compare;
};

/// Reads a `train` output folder (metrics.jsonl, summary.json, gradcam.png, per_class.json) or a
/// `compare` output folder (compare.json and OUT/<variant>/seed-<n>/…). Throws naming
/// the folder when it holds neither, or a file that does not parse or lacks a field a
/// run writes.
ReportData load_report_data(const std::string& dir);

}  // namespace splitshare::report
