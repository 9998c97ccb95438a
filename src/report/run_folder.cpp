#include <splitshare/report/run_folder.h>

#include <splitshare/util/files.h>

#include <c10/util/Exception.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

namespace splitshare::report {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json parse_json_file(const fs::path& path) {
  try {
    return json::parse(util::read_file(path, "report input"));
  } catch (const json::exception& e) {
    TORCH_CHECK(false, "report: ", path.string(), " is not valid JSON: ", e.what());
  }
  return json();
}

RunRecord load_run(const std::string& name, const fs::path& dir) {
  RunRecord run;
  run.name = name;
  run.dir = dir.string();
  const auto metrics = dir / "metrics.jsonl";
  if (fs::exists(metrics)) {
    std::istringstream lines(util::read_file(metrics, "report input"));
    std::string line;
    for (int64_t number = 1; std::getline(lines, line); ++number) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      try {
        run.epochs.push_back(json::parse(line));
      } catch (const json::exception& e) {
        TORCH_CHECK(false, "report: ", metrics.string(), " line ", number, " is not valid JSON: ", e.what());
      }
    }
  }
  if (fs::exists(dir / "summary.json")) run.summary = parse_json_file(dir / "summary.json");
  if (fs::exists(dir / "gradcam.png")) run.gradcam_png = util::read_file(dir / "gradcam.png", "report input");
  return run;
}

// The seed folders of a variant: those compare.json lists, else every seed-N folder, by N.
std::vector<fs::path> seed_dirs(const fs::path& variant_dir, const json& variant) {
  std::vector<fs::path> dirs;
  if (variant.contains("seeds") && variant["seeds"].is_array()) {
    for (const auto& s : variant["seeds"]) dirs.push_back(variant_dir / ("seed-" + s.dump()));
    return dirs;
  }
  std::vector<std::pair<long long, fs::path>> found;
  if (fs::is_directory(variant_dir)) {
    for (const auto& entry : fs::directory_iterator(variant_dir)) {
      const auto name = entry.path().filename().string();
      if (!entry.is_directory() || name.rfind("seed-", 0) != 0) continue;
      try {
        found.emplace_back(std::stoll(name.substr(5)), entry.path());
      } catch (const std::exception&) {
      }
    }
  }
  std::sort(found.begin(), found.end());
  for (auto& f : found) dirs.push_back(f.second);
  return dirs;
}

}  // namespace

ReportData load_report_data(const std::string& dir) {
  const fs::path root(dir);
  TORCH_CHECK(fs::is_directory(root), "report: ", dir, " is not a folder");
  ReportData data;
  data.dir = dir;
  if (fs::exists(root / "compare.json")) {
    data.title = "splitshare compare";
    data.compare = parse_json_file(root / "compare.json");
    TORCH_CHECK(data.compare.is_object() && data.compare.contains("variants") && data.compare["variants"].is_array(),
                "report: ", (root / "compare.json").string(), " has no \"variants\" list");
    for (const auto& v : data.compare["variants"]) {
      const std::string name = v.contains("variant") && v["variant"].is_string() ? v["variant"].get<std::string>() : "";
      TORCH_CHECK(!name.empty(), "report: a variant in ", (root / "compare.json").string(), " has no name");
      for (const auto& seed_dir : seed_dirs(root / name, v)) {
        if (!fs::is_directory(seed_dir)) continue;
        data.runs.push_back(load_run(name + "/" + seed_dir.filename().string(), seed_dir));
      }
    }
    return data;
  }
  TORCH_CHECK(fs::exists(root / "metrics.jsonl"), "report: ", dir,
              " holds neither compare.json (a compare folder) nor metrics.jsonl (a train folder)");
  data.title = "splitshare train";
  data.runs.push_back(load_run("train", root));
  return data;
}

}  // namespace splitshare::report
