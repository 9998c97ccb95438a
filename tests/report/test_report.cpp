// The HTML report: escaping, self-containment, SVG charts, reading train and compare
// folders, a headless-Chromium screenshot that must not be blank, and the CLI hooks.
#include <splitshare/image/decode.h>
#include <splitshare/image/png.h>
#include <splitshare/report/html.h>
#include <splitshare/train/compare.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <regex>

#include "support.h"

namespace sr = splitshare::report;
namespace fs = std::filesystem;
using nlohmann::json;
using splitshare::testing::read_file;
using splitshare::testing::run_command;
using splitshare::testing::TempDir;

namespace {

const std::string kCli = SPLITSHARE_CLI;
const char* kFashion = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

namespace tr = splitshare::train;

splitshare::eval::EvalResult metrics(double top1, double loss, std::vector<double> heads) {
  splitshare::eval::EvalResult m;
  m.top1 = top1;
  m.top5 = 0.99;
  m.loss = loss;
  m.samples = 100;
  m.head_top1 = std::move(heads);
  m.oracle = top1 + 0.05;
  m.most_confident = top1 - 0.01;
  m.confidence_weighted = top1 + 0.001;
  return m;
}

splitshare::run::EpochRecord epoch(int e, double loss, double top1, std::vector<double> heads) {
  splitshare::run::EpochRecord r;
  r.epoch = e;
  r.lr = 0.1 / e;
  r.train_loss = loss + 0.1;
  r.train_top1 = top1 - 0.02;
  r.val = metrics(top1, loss, std::move(heads));
  return r;
}

// A run folder as `fit` leaves it (written with the library's own records), with a hostile class name.
void write_run(const fs::path& dir, int epochs, double offset, bool with_figure) {
  fs::create_directories(dir);
  std::string lines;
  for (int e = 1; e <= epochs; ++e) {
    lines += splitshare::run::to_json(epoch(e, 1.5 / e + offset, 0.6 + 0.08 * e - offset, {0.55 + 0.08 * e, 0.57 + 0.08 * e,
                                                                              0.6 + 0.08 * e, 0.58 + 0.08 * e}))
                 .dump() + "\n";
  }
  splitshare::testing::write_file((dir / "metrics.jsonl").string(), lines);
  splitshare::run::RunSummary summary;
  summary.best_top1 = 0.6 + 0.08 * epochs - offset;
  summary.best_epoch = epochs;
  summary.seconds = 12.5;
  summary.params = 1234;
  summary.head_params = 56;
  summary.last = epoch(epochs, 1.5 / epochs + offset, 0.6 + 0.08 * epochs - offset, {0.8, 0.81, 0.83, 0.82});
  summary.model.model = splitshare::nn::ClassifierOptions().arch("resnet10").num_classes(3);
  summary.model.classes = {"T-shirt/top", "<script>alert(1)</script>", "Tom & \"Jerry\""};
  summary.model.preprocess.channels = 1;
  splitshare::testing::write_file((dir / "summary.json").string(), splitshare::run::to_json(summary).dump());
  if (with_figure) {
    // A small picture with colour, standing in for the Grad-CAM grid.
    auto image = torch::zeros({3, 40, 60}, torch::kUInt8);
    image[0].narrow(1, 0, 30).fill_(220);
    image[2].narrow(1, 30, 30).fill_(200);
    splitshare::data::write_png((dir / "gradcam.png").string(), image);
  }
}

void expect_self_contained(const std::string& html) {
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // only the SVG namespace
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find(" src=\"file:"), std::string::npos);
}

std::string chromium() {
  for (const char* candidate : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}) {
    if (fs::exists(candidate)) return candidate;
  }
  return "";
}

}  // namespace

TEST(Report, EscapesHtml) {
  EXPECT_EQ(sr::escape_html("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;");
  EXPECT_EQ(sr::escape_html("plain"), "plain");
}

TEST(Report, Base64MatchesRfc4648) {
  EXPECT_EQ(sr::base64(""), "");
  EXPECT_EQ(sr::base64("f"), "Zg==");
  EXPECT_EQ(sr::base64("fo"), "Zm8=");
  EXPECT_EQ(sr::base64("foo"), "Zm9v");
  EXPECT_EQ(sr::base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(sr::base64(std::string("\xff\x00\x80", 3)), "/wCA");
}

TEST(Report, LineChartDrawsEverySeriesAndSkipsMissingPoints) {
  const double nan = std::nan("");
  const auto svg = sr::line_chart_svg({{"train <loss>", {1, 2, 3}, {1.0, nan, 0.5}, true},
                                       {"val", {1, 2, 3}, {0.9, 0.7, 0.6}, false},
                                       {"single", {1}, {0.8}, false}},
                                      sr::ChartOptions().title("loss & more"));
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_EQ(count(svg, "<polyline"), 3u);
  EXPECT_EQ(count(svg, "<circle"), 2u + 3u + 1u);  // the NaN point is skipped
  EXPECT_NE(svg.find("train &lt;loss&gt;"), std::string::npos);
  EXPECT_NE(svg.find("loss &amp; more"), std::string::npos);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  // No data at all still gives a valid, empty chart.
  EXPECT_NE(sr::line_chart_svg({}, sr::ChartOptions()).find("</svg>"), std::string::npos);
  EXPECT_THROW(sr::line_chart_svg({{"bad", {1, 2}, {1}, false}}, sr::ChartOptions()), c10::Error);
}

TEST(Report, BarChartHasABarPerValue) {
  const auto svg = sr::bar_chart_svg({{"ssm", {"head 1", "head 2", "oracle"}, {0.8, 0.82, 0.9}},
                                      {"linear", {"model (mean)"}, {0.81}}},
                                     sr::ChartOptions().title("per head").percent(true));
  EXPECT_EQ(count(svg, "<rect x="), 4u + 1u);  // four bars + the plot frame
  EXPECT_NE(svg.find(">ssm<"), std::string::npos);
  EXPECT_NE(svg.find(">oracle<"), std::string::npos);
}

TEST(Report, TrainReportIsSelfContainedEscapedAndHasCurves) {
  TempDir dir;
  write_run(dir.path(), 4, 0.0, /*with_figure=*/true);
  const auto data = sr::load_report_data(dir.path().string());
  ASSERT_EQ(data.runs.size(), 1u);
  EXPECT_EQ(data.runs[0].epochs.size(), 4u);
  EXPECT_FALSE(data.runs[0].gradcam_png.empty());
  const auto html = sr::render_report(data);
  expect_self_contained(html);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("Tom &amp; &quot;Jerry&quot;"), std::string::npos);
  EXPECT_GE(count(html, "<svg"), 4u);  // loss, accuracy, learning rate, per-head bars
  EXPECT_GE(count(html, "<polyline"), 2u + 3u + 4u + 1u);
  EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);
  EXPECT_NE(html.find("most-confident head"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"num\">92.00</td>"), std::string::npos) << "final top-1 0.92 as a percentage";

  const auto path = sr::write_report(dir.path().string());
  EXPECT_EQ(path, dir.file("report.html"));
  EXPECT_EQ(read_file(path), html);
}

TEST(Report, CompareReportTabulatesVariantsSeedsAndTheEnsembleGain) {
  TempDir dir;
  write_run(dir.path() / "linear" / "seed-0", 3, 0.02, false);
  write_run(dir.path() / "linear" / "seed-1", 3, 0.03, false);
  write_run(dir.path() / "ssm" / "seed-0", 3, 0.0, true);
  write_run(dir.path() / "ssm" / "seed-1", 2, 0.01, false);
  auto variant = [](const std::string& name, int64_t params, std::vector<splitshare::eval::EvalResult> runs,
                    double mean, double std, std::vector<double> head_means, double ensemble, double gain) {
    splitshare::run::VariantResult v;
    v.name = name;
    v.params = params;
    v.head_params = params / 10;
    v.seeds = {0, 1};
    v.runs = std::move(runs);
    v.top1_mean = mean;
    v.top1_std = std;
    v.top5_mean = 0.99;
    v.head_top1_mean = std::move(head_means);
    v.oracle_mean = mean + 0.05;
    v.ensemble_top1 = ensemble;
    v.ensemble_gain_over_mean = gain;
    v.ensemble_gain_over_best = gain - 0.01;
    return v;
  };
  const std::vector<splitshare::run::VariantResult> compare = {
      variant("linear", 1000, {metrics(0.84, 0.5, {0.84}), metrics(0.86, 0.5, {0.86})}, 0.85, 0.01, {0.85}, 0.87, 0.02),
      variant("ssm", 1100, {metrics(0.875, 0.4, {0.8, 0.82, 0.85, 0.84}), metrics(0.885, 0.4, {0.81, 0.83, 0.86, 0.85})},
              0.88, 0.005, {0.805, 0.825, 0.855, 0.845}, 0.895, 0.015)};
  splitshare::testing::write_file(dir.file("compare.json"), splitshare::run::to_json(compare).dump());

  const auto data = sr::load_report_data(dir.path().string());
  ASSERT_EQ(data.runs.size(), 4u);
  ASSERT_TRUE(data.compare.has_value());
  EXPECT_EQ(data.compare->at(1).runs[1].head_top1, (std::vector<double>{0.81, 0.83, 0.86, 0.85}));
  EXPECT_EQ(data.runs[2].name, "ssm/seed-0");
  const auto html = sr::render_report(data);
  expect_self_contained(html);
  EXPECT_NE(html.find("+1.00</td><td class=\"num\">+2.00"), std::string::npos) << "linear's gains: over best, mean";
  EXPECT_NE(html.find("+0.50</td><td class=\"num\">+1.50"), std::string::npos) << "ssm's gains: over best, mean";
  EXPECT_NE(html.find("gain over better"), std::string::npos);
  EXPECT_NE(html.find("80.50 / 82.50 / 85.50 / 84.50"), std::string::npos);  // per-head means over seeds
  EXPECT_NE(html.find("88.00 ± 0.50"), std::string::npos);
  EXPECT_EQ(count(html, "data:image/png;base64,"), 1u);
  EXPECT_GE(count(html, "<polyline"), 4u * 4u);  // four charts, one line per run

  EXPECT_THROW(sr::load_report_data(dir.file("linear")), c10::Error);  // neither kind of folder
  // A line that is JSON but not an epoch record, and one that is not JSON: each named.
  splitshare::testing::write_file(dir.file("linear/seed-0/metrics.jsonl"), "{\"epoch\": 1}\n");
  auto message = splitshare::testing::expect_error([&] { sr::load_report_data(dir.path().string()); });
  EXPECT_NE(message.find("metrics.jsonl line 1 is not an epoch record"), std::string::npos) << message;
  splitshare::testing::write_file(dir.file("linear/seed-0/metrics.jsonl"), "not json\n");
  EXPECT_THROW(sr::load_report_data(dir.path().string()), c10::Error);
  splitshare::testing::write_file(dir.file("compare.json"), "{\"variants\": [{\"variant\": \"x\"}]}");
  message = splitshare::testing::expect_error([&] { sr::load_report_data(dir.path().string()); });
  EXPECT_NE(message.find("not a compare.json"), std::string::npos) << message;
}

TEST(Report, ChromiumRendersANonBlankPage) {
  const std::string browser = chromium();
  if (browser.empty()) GTEST_SKIP() << "chromium not installed (apt-get install chromium)";
  TempDir dir;
  write_run(dir.path(), 5, 0.0, /*with_figure=*/true);
  const auto page = sr::write_report(dir.path().string());
  const std::string shot = dir.file("shot.png");
  std::string log;
  const int rc = run_command("timeout 120 " + browser +
                                 " --headless --no-sandbox --disable-gpu --disable-background-networking "
                                 "--disable-component-update --disable-sync --no-first-run --hide-scrollbars "
                                 "--user-data-dir=" + dir.file("profile") + " --screenshot=" + shot +
                                 " --window-size=1200,1600 file://" + page,
                             &log);
  ASSERT_EQ(rc, 0) << log;
  ASSERT_TRUE(fs::exists(shot)) << log;
  const auto image = splitshare::data::decode_image(shot).to(torch::kInt32);  // [3, H, W]
  EXPECT_EQ(image.size(2), 1200);
  EXPECT_EQ(image.size(1), 1600);
  const auto not_white = (image < 235).any(0);
  const double inked = not_white.to(torch::kDouble).mean().item<double>();
  EXPECT_GT(inked, 0.01) << "the screenshot is (nearly) blank";
  // Coloured pixels: chart lines and bars (saturation, not just grey text).
  const auto spread = std::get<0>(image.max(0)) - std::get<0>(image.min(0));
  EXPECT_GT((spread > 80).sum().item<int64_t>(), 500) << "no coloured chart pixels";
}

TEST(ReportCli, TrainAndCompareWriteReportsAndReportRegenerates) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TempDir dir;
  const std::string common = " --limit-train 256 --limit-val 64 --width 4 --batch-size 64 --no-progress --threads 1";
  std::string log;
  const auto train_out = dir.file("train");
  ASSERT_EQ(run_command(kCli + " train --epochs 2" + common + " --out " + train_out, &log), 0) << log;
  EXPECT_TRUE(fs::exists(train_out + "/gradcam.png")) << log;
  ASSERT_TRUE(fs::exists(train_out + "/report.html")) << log;
  const auto html = read_file(train_out + "/report.html");
  EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);
  EXPECT_NE(html.find("Ankle boot"), std::string::npos);
  const auto grid = splitshare::data::read_image_info(train_out + "/gradcam.png");
  EXPECT_EQ(grid.width, 2 * 6 + 6 * 140 + 5 * 6);  // input, whole, 4 splits of 28 px enlarged 5x

  fs::remove(train_out + "/report.html");
  ASSERT_EQ(run_command(kCli + " report " + train_out, &log), 0) << log;
  EXPECT_EQ(read_file(train_out + "/report.html"), html);
  EXPECT_NE(run_command(kCli + " report " + dir.file("nowhere"), &log), 0);
  EXPECT_NE(log.find("is not a folder"), std::string::npos) << log;

  const auto compare_out = dir.file("compare");
  const std::string compare = kCli + " compare --variants ssm --seeds 2" + common + " --epochs 1 --out " + compare_out;
  ASSERT_EQ(run_command(compare + " --json", &log), 0) << log;
  const auto results = json::parse(read_file(compare_out + "/compare.json"));
  ASSERT_EQ(results["variants"].size(), 1u);
  const auto& ssm = results["variants"][0];
  EXPECT_EQ(ssm["seeds"], json({0, 1}));
  EXPECT_EQ(ssm["head_top1_mean"].size(), 4u);
  const double members = (ssm["runs"][0]["top1"].get<double>() + ssm["runs"][1]["top1"].get<double>()) / 2;
  EXPECT_NEAR(ssm["ensemble_gain_over_mean"].get<double>(), ssm["ensemble_top1"].get<double>() - members, 1e-12);
  const double better = std::max(ssm["runs"][0]["top1"].get<double>(), ssm["runs"][1]["top1"].get<double>());
  EXPECT_NEAR(ssm["ensemble_gain_over_best"].get<double>(), ssm["ensemble_top1"].get<double>() - better, 1e-12);
  EXPECT_TRUE(fs::exists(compare_out + "/ssm/seed-0/gradcam.png"));
  EXPECT_FALSE(fs::exists(compare_out + "/ssm/seed-1/gradcam.png"));  // one figure per variant
  const auto compare_html = read_file(compare_out + "/report.html");
  EXPECT_EQ(count(compare_html, "data:image/png;base64,"), 1u);
  EXPECT_NE(compare_html.find("ssm/seed-1"), std::string::npos);

  EXPECT_NE(run_command(kCli + " compare --preset paper-large", &log), 0);
  EXPECT_NE(log.find("unknown preset 'paper-large'"), std::string::npos) << log;

  // Resumable: a second run reuses every finished run.
  ASSERT_EQ(run_command(compare, &log), 0) << log;
  EXPECT_EQ(count(log, "finished earlier"), 2u) << log;
  EXPECT_NE(log.find("gain"), std::string::npos) << log;
  // A run stopped part-way (its checkpoint.pt without summary.json) continues where it was.
  // Continued, its first epoch stays the 1-epoch run's (a run started again for 2 epochs would
  // have another learning rate in its first epoch).
  // A finished run is reused only for the settings it was made with (epochs included).
  log.clear();
  EXPECT_EQ(run_command(kCli + " compare --variants ssm --seeds 2" + common + " --epochs 2 --out " + compare_out, &log),
            1) << log;
  EXPECT_NE(log.find("train.epochs: 1 in the run, 2 asked for"), std::string::npos) << log;
  const auto first_epoch = read_file(compare_out + "/ssm/seed-1/metrics.jsonl");
  fs::remove(compare_out + "/ssm/seed-0/summary.json");
  fs::remove(compare_out + "/ssm/seed-1/summary.json");
  log.clear();
  ASSERT_EQ(run_command(kCli + " compare --variants ssm --seeds 2" + common + " --epochs 2 --out " + compare_out, &log),
            0) << log;
  EXPECT_EQ(count(log, "finished earlier"), 0u) << log;
  EXPECT_NE(log.find("ssm seed 1: stopped part-way, continuing from " + compare_out + "/ssm/seed-1/checkpoint.pt"),
            std::string::npos) << log;
  const auto both_epochs = read_file(compare_out + "/ssm/seed-1/metrics.jsonl");
  EXPECT_EQ(count(both_epochs, "\n"), 2u) << both_epochs;
  EXPECT_EQ(both_epochs.substr(0, first_epoch.size()), first_epoch);
}
