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
        run.epochs.push_back(run::epoch_record_from_json(json::parse(line)));
      } catch (const json::exception& e) {
        TORCH_CHECK(false, "report: ", metrics.string(), " line ", number, " is not an epoch record: ", e.what());
      }
    }
  }
  if (fs::exists(dir / "summary.json")) {
    const auto path = dir / "summary.json";
    run.summary = run::summary_from_json(parse_json_file(path), "report: " + path.string());
  }
  if (fs::exists(dir / "gradcam.png")) run.gradcam_png = util::read_file(dir / "gradcam.png", "report input");
  if (fs::exists(dir / "per_class.json")) {
    const auto path = dir / "per_class.json";
    try {
      run.per_class = eval::per_class_from_json(parse_json_file(path));
    } catch (const json::exception& e) {
      TORCH_CHECK(false, "report: ", path.string(), " is not a per-class record: ", e.what());
    }
  }
  return run;
}


}  // namespace

ReportData load_report_data(const std::string& dir) {
  const fs::path root(dir);
  TORCH_CHECK(fs::is_directory(root), "report: ", dir, " is not a folder");
  ReportData data;
  data.dir = dir;
  if (fs::exists(root / "compare.json")) {
    data.title = "splitshare compare";
    const auto path = root / "compare.json";
    data.compare = run::variants_from_json(parse_json_file(path), "report: " + path.string());
    for (const auto& variant : *data.compare) {
      for (const auto seed : variant.seeds) {
        const auto seed_dir = root / variant.name / ("seed-" + std::to_string(seed));
        if (fs::is_directory(seed_dir)) data.runs.push_back(load_run(variant.name + "/" + seed_dir.filename().string(), seed_dir));
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
