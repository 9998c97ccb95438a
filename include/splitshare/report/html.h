#pragma once

#include <splitshare/data/source.h>
#include <splitshare/report/charts.h>
#include <splitshare/report/run_folder.h>
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
