#pragma once

#include <splitshare/report/charts.h>
#include <splitshare/report/run_folder.h>

#include <nlohmann/json.hpp>

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

}  // namespace splitshare::report
