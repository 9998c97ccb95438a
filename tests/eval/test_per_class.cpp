// Per-class evaluation: confusion matrices, precision/recall/F1 against sklearn's definitions
// computed independently here, JSON, the report section, the mistakes sheet and the CLI.
#include <splitshare/eval/metrics.h>
#include <splitshare/eval/per_class.h>
#include <splitshare/explain/mistakes_sheet.h>
#include <splitshare/report/html.h>
#include <splitshare/report/per_class_section.h>
#include <splitshare/train/fit.h>

#include <nlohmann/json.hpp>

#include <filesystem>

#include "support.h"

namespace se = splitshare::eval;
using splitshare::testing::read_file;
using splitshare::testing::run_command;
using splitshare::testing::TempDir;

namespace {

const std::string kCli = SPLITSHARE_CLI;
const char* kFashion = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

// Six classes: "e" (4) occurs nowhere; "f" (5) is predicted once but has no samples;
// "d" (3) has samples but is never predicted.
const std::vector<int64_t> kLabels = {0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 1};
const std::vector<int64_t> kPredictions = {0, 0, 1, 1, 2, 2, 2, 2, 0, 0, 0, 5};
const std::vector<std::string> kNames = {"a", "b", "c", "d", "e", "f"};
constexpr int64_t kK = 6;

// sklearn's precision_recall_fscore_support, written from its definitions with plain counts:
// precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN), each 0
// when its denominator is 0; averages over the labels present in y_true or y_pred.
struct Reference {
  std::vector<double> precision, recall, f1;
  std::vector<int64_t> support;
  double macro_p = 0, macro_r = 0, macro_f1 = 0, weighted_p = 0, weighted_r = 0, weighted_f1 = 0;
};

Reference sklearn_reference(const std::vector<int64_t>& y, const std::vector<int64_t>& p, int64_t k) {
  Reference ref;
  int64_t present = 0, total = 0;
  for (int64_t c = 0; c < k; ++c) {
    int64_t tp = 0, fp = 0, fn = 0;
    bool seen = false;
    for (size_t i = 0; i < y.size(); ++i) {
      tp += y[i] == c && p[i] == c;
      fp += y[i] != c && p[i] == c;
      fn += y[i] == c && p[i] != c;
      seen = seen || y[i] == c || p[i] == c;
    }
    ref.precision.push_back(tp + fp ? double(tp) / (tp + fp) : 0.0);
    ref.recall.push_back(tp + fn ? double(tp) / (tp + fn) : 0.0);
    ref.f1.push_back(2 * tp + fp + fn ? 2.0 * tp / (2 * tp + fp + fn) : 0.0);
    ref.support.push_back(tp + fn);
    total += tp + fn;
    if (!seen) continue;
    ++present;
    ref.macro_p += ref.precision.back();
    ref.macro_r += ref.recall.back();
    ref.macro_f1 += ref.f1.back();
    ref.weighted_p += ref.precision.back() * (tp + fn);
    ref.weighted_r += ref.recall.back() * (tp + fn);
    ref.weighted_f1 += ref.f1.back() * (tp + fn);
  }
  for (double* v : {&ref.macro_p, &ref.macro_r, &ref.macro_f1}) *v /= present;
  for (double* v : {&ref.weighted_p, &ref.weighted_r, &ref.weighted_f1}) *v /= total;
  return ref;
}

torch::Tensor reference_matrix(const std::vector<int64_t>& y, const std::vector<int64_t>& p, int64_t k) {
  auto m = torch::zeros({k, k}, torch::kLong);
  for (size_t i = 0; i < y.size(); ++i) m[y[i]][p[i]] += 1;
  return m;
}

// Logits whose argmax is `predictions` (one-hot, scaled).
torch::Tensor logits_for(const std::vector<int64_t>& predictions, int64_t k, float scale = 3.f) {
  return torch::one_hot(torch::tensor(predictions), k).to(torch::kFloat) * scale;
}

int64_t png_u32(const std::string& png, size_t offset) {
  int64_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(png.at(offset + i));
  return v;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST(PerClass, ConfusionMatrixCountsPairsAndRefusesOutOfRangeClasses) {
  const auto m = se::confusion_matrix(torch::tensor(kLabels), torch::tensor(kPredictions), kK);
  EXPECT_TRUE(m.equal(reference_matrix(kLabels, kPredictions, kK))) << m;
  EXPECT_EQ(m[3][0].item<int64_t>(), 2);  // both "d" samples predicted as "a"
  EXPECT_EQ(m.sum().item<int64_t>(), 12);
  EXPECT_THROW(se::confusion_matrix(torch::tensor({0, 6}), torch::tensor({0, 1}), kK), c10::Error);
  EXPECT_THROW(se::confusion_matrix(torch::tensor({0, 1}), torch::tensor({-1, 1}), kK), c10::Error);
}

TEST(PerClass, PrecisionRecallF1AndAveragesMatchSklearnDefinitions) {
  const auto m = reference_matrix(kLabels, kPredictions, kK);
  const auto scores = se::class_scores(m, kNames);
  const auto ref = sklearn_reference(kLabels, kPredictions, kK);
  ASSERT_EQ(scores.size(), 6u);
  for (int64_t c = 0; c < kK; ++c) {
    EXPECT_EQ(scores[c].name, kNames[c]);
    EXPECT_NEAR(scores[c].precision, ref.precision[c], 1e-12) << c;
    EXPECT_NEAR(scores[c].recall, ref.recall[c], 1e-12) << c;
    EXPECT_NEAR(scores[c].f1, ref.f1[c], 1e-12) << c;
    EXPECT_EQ(scores[c].support, ref.support[c]) << c;
  }
  // By hand: "a" is predicted 5 times, right twice, of 3 samples.
  EXPECT_DOUBLE_EQ(scores[0].precision, 0.4);
  EXPECT_DOUBLE_EQ(scores[0].recall, 2.0 / 3);
  EXPECT_DOUBLE_EQ(scores[0].f1, 0.5);
  EXPECT_EQ(scores[3].precision, 0.0);  // never predicted
  EXPECT_EQ(scores[5].support, 0);
  EXPECT_EQ(scores[5].predicted, 1);

  const auto macro = se::macro_average(scores);
  const auto weighted = se::weighted_average(scores);
  EXPECT_NEAR(macro.precision, ref.macro_p, 1e-12);
  EXPECT_NEAR(macro.recall, ref.macro_r, 1e-12);
  EXPECT_NEAR(macro.f1, ref.macro_f1, 1e-12);
  EXPECT_NEAR(macro.recall, (2.0 / 3 + 1.0 / 3 + 0.75) / 5, 1e-12);  // "e" left out, "f" counted
  EXPECT_NEAR(weighted.precision, ref.weighted_p, 1e-12);
  EXPECT_NEAR(weighted.recall, 0.5, 1e-12);  // weighted recall = accuracy, 6 of 12
  EXPECT_NEAR(weighted.f1, ref.weighted_f1, 1e-12);
  EXPECT_EQ(macro.support, 12);
  EXPECT_EQ(weighted.support, 12);
}

TEST(PerClass, MostConfusedPairsLargestFirstThenInIndexOrder) {
  const auto pairs = se::most_confused(reference_matrix(kLabels, kPredictions, kK), kNames, 3);
  ASSERT_EQ(pairs.size(), 3u);
  EXPECT_EQ(pairs[0].truth_name, "d");
  EXPECT_EQ(pairs[0].predicted_name, "a");
  EXPECT_EQ(pairs[0].count, 2);
  EXPECT_DOUBLE_EQ(pairs[0].rate, 1.0);
  // Then the count-1 cells in (true, predicted) order: a->b, b->c.
  EXPECT_EQ(pairs[1].truth, 0);
  EXPECT_EQ(pairs[1].predicted, 1);
  EXPECT_DOUBLE_EQ(pairs[1].rate, 1.0 / 3);
  EXPECT_EQ(pairs[2].truth, 1);
  EXPECT_EQ(pairs[2].predicted, 2);
  EXPECT_EQ(se::most_confused(reference_matrix(kLabels, kPredictions, kK)).size(), 5u);  // all off-diagonal cells
}

TEST(PerClass, AccumulatorCountsCombinedAndPerHeadMatricesAcrossBatchesAndRanks) {
  // Two heads: head 0 predicts kPredictions, head 1 is always right; the combined output
  // is head 0's logits (scaled up so it wins).
  const std::vector<int64_t> right = kLabels;
  se::Accumulator acc;
  for (int64_t start : {0, 7}) {
    const int64_t n = start == 0 ? 7 : 5;
    std::vector<int64_t> y(kLabels.begin() + start, kLabels.begin() + start + n);
    std::vector<int64_t> p(kPredictions.begin() + start, kPredictions.begin() + start + n);
    splitshare::nn::HeadOutput out;
    out.head_logits = {logits_for(p, kK), logits_for(y, kK)};
    out.logits = logits_for(p, kK, 10.f) + logits_for(y, kK);
    acc.add(out, torch::tensor(y));
  }
  auto r = acc.result();
  const auto expected = reference_matrix(kLabels, kPredictions, kK);
  EXPECT_TRUE(r.confusion.equal(expected)) << r.confusion;
  ASSERT_EQ(r.head_confusion.size(), 2u);
  EXPECT_TRUE(r.head_confusion[0].equal(expected));
  EXPECT_TRUE(r.head_confusion[1].equal(reference_matrix(kLabels, right, kK)));
  EXPECT_DOUBLE_EQ(r.top1, r.confusion.diagonal().sum().item<double>() / r.samples);

  const auto report = se::per_class_report(r, kNames);
  ASSERT_EQ(report.head_recall.size(), 2u);
  const auto ref = sklearn_reference(kLabels, kPredictions, kK);
  for (int64_t c = 0; c < kK; ++c) {
    EXPECT_NEAR(report.head_recall[0][c], ref.recall[c], 1e-12) << c;
    EXPECT_EQ(report.head_recall[1][c], ref.support[c] > 0 ? 1.0 : 0.0) << c;
  }

  // Two ranks with the same shard: every count doubles, the figures stay.
  acc.reduce([](std::vector<torch::Tensor>& tensors) {
    for (auto& t : tensors) t.mul_(2);
  });
  r = acc.result();
  EXPECT_EQ(r.samples, 24);
  EXPECT_TRUE(r.confusion.equal(expected * 2));
  EXPECT_TRUE(r.head_confusion[1].equal(reference_matrix(kLabels, right, kK) * 2));
  EXPECT_NEAR(se::per_class_report(r, kNames).macro.f1, ref.macro_f1, 1e-12);
}

TEST(PerClass, JsonRoundTripAndOlderRecordsStillParse) {
  se::EvalResult r;
  r.samples = 12;
  r.top1 = 0.5;
  r.head_top1 = {0.5, 1.0};
  r.confusion = reference_matrix(kLabels, kPredictions, kK);
  r.head_confusion = {r.confusion, reference_matrix(kLabels, kLabels, kK)};
  const auto report = se::per_class_report(r, kNames);
  const auto j = se::to_json(r, report);
  ASSERT_EQ(j["per_class"].size(), 6u);
  EXPECT_EQ(j["per_class"][3]["class"], "d");
  EXPECT_EQ(j["per_class"][3]["precision"], 0.0);
  EXPECT_EQ(j["confusion"]["classes"], nlohmann::json(kNames));
  EXPECT_EQ(j["confusion"]["matrix"][3][0], 2);
  EXPECT_EQ(j["confused_pairs"][0]["true"], "d");
  EXPECT_EQ(j["heads"][1]["per_class"][0], 1.0);
  EXPECT_EQ(j["heads"][1]["top1"], 1.0);
  EXPECT_NEAR(j["weighted"]["recall"].get<double>(), 0.5, 1e-12);

  const auto back = se::per_class_from_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(back.classes, report.classes);
  EXPECT_TRUE(back.confusion.equal(report.confusion));
  ASSERT_EQ(back.per_class.size(), report.per_class.size());
  for (size_t c = 0; c < back.per_class.size(); ++c) {
    EXPECT_EQ(back.per_class[c].precision, report.per_class[c].precision);
    EXPECT_EQ(back.per_class[c].f1, report.per_class[c].f1);
    EXPECT_EQ(back.per_class[c].predicted, report.per_class[c].predicted);
  }
  EXPECT_EQ(back.macro.f1, report.macro.f1);
  EXPECT_EQ(back.weighted.precision, report.weighted.precision);
  EXPECT_EQ(back.head_recall, report.head_recall);
  ASSERT_EQ(back.confused_pairs.size(), report.confused_pairs.size());
  EXPECT_EQ(back.confused_pairs[0].count, 2);
  EXPECT_EQ(se::to_json(back), se::to_json(report));

  // The eval object still reads as an EvalResult; the plain to_json (metrics.jsonl) is unchanged.
  EXPECT_EQ(se::from_json(j).head_top1, r.head_top1);
  const auto plain = se::to_json(r);
  EXPECT_FALSE(plain.contains("per_class"));
  EXPECT_FALSE(plain.contains("confusion"));
  EXPECT_FALSE(plain["heads"][0].contains("per_class"));
  EXPECT_THROW(se::per_class_from_json(plain), nlohmann::json::exception);
}

TEST(PerClassReport, SectionHasAHeatMapAndRowsWorstRecallFirst) {
  se::EvalResult r;
  r.confusion = reference_matrix(kLabels, kPredictions, kK);
  r.head_confusion = {r.confusion, r.confusion};
  auto names = kNames;
  names[2] = "<c&>";
  const auto report = se::per_class_report(r, names);
  const auto svg = splitshare::report::confusion_heatmap_svg(report);
  EXPECT_EQ(count(svg, "<rect x="), size_t(kK * kK));
  EXPECT_EQ(count(svg, "<title>"), size_t(kK * kK) + 1);
  EXPECT_NE(svg.find("d -&gt; a: 2 (100.00 % of d)"), std::string::npos);
  EXPECT_EQ(svg.find("<c&>"), std::string::npos);
  EXPECT_NE(svg.find("&lt;c&amp;&gt;"), std::string::npos);

  const auto html = splitshare::report::per_class_section(report);
  // Recall: d 0, e 0, f 0, b 1/3, a 2/3, c 3/4.
  const auto row = [&](const std::string& name) { return html.find("<tr><td>" + name + "</td>"); };
  EXPECT_LT(row("d"), row("b"));
  EXPECT_LT(row("b"), row("a"));
  EXPECT_LT(row("a"), row("&lt;c&amp;&gt;"));
  EXPECT_NE(html.find("head 2 recall %"), std::string::npos);
  EXPECT_NE(html.find("macro average"), std::string::npos);
  EXPECT_NE(html.find("Most confused pairs"), std::string::npos);

  se::EvalResult big;
  big.confusion = torch::eye(splitshare::report::kMaxHeatmapClasses + 1, torch::kLong);
  EXPECT_EQ(splitshare::report::confusion_heatmap_svg(se::per_class_report(big, {})), "");
}

TEST(PerClassReport, TrainFolderWithPerClassJsonShowsTheSection) {
  TempDir dir;
  splitshare::run::EpochRecord record;
  record.epoch = 1;
  record.val.samples = 12;
  record.val.head_top1 = {0.5};
  splitshare::testing::write_file(dir.file("metrics.jsonl"), splitshare::run::to_json(record).dump() + "\n");
  auto without = splitshare::report::load_report_data(dir.path().string());
  EXPECT_FALSE(without.runs.at(0).per_class);
  EXPECT_EQ(splitshare::report::render_report(without).find("Per-class"), std::string::npos);

  se::EvalResult r;
  r.confusion = reference_matrix(kLabels, kPredictions, kK);
  splitshare::testing::write_file(dir.file("per_class.json"), se::to_json(se::per_class_report(r, kNames)).dump());
  const auto data = splitshare::report::load_report_data(dir.path().string());
  ASSERT_TRUE(data.runs.at(0).per_class);
  EXPECT_TRUE(data.runs[0].per_class->confusion.equal(r.confusion));
  const auto html = splitshare::report::render_report(data);
  EXPECT_NE(html.find("Per-class validation metrics"), std::string::npos);
  EXPECT_NE(html.find("class=\"heatmap\""), std::string::npos);

  splitshare::testing::write_file(dir.file("per_class.json"), "{\"per_class\": []}");
  EXPECT_THROW(splitshare::report::load_report_data(dir.path().string()), c10::Error);
}

TEST(PerClass, MistakesSheetTilesImagesWithCaptions) {
  splitshare::data::Preprocess preprocess;
  preprocess.channels = 1;
  preprocess.mean = {0.5};
  preprocess.std = {0.25};
  std::vector<se::Mistake> mistakes;
  for (int64_t i = 0; i < 5; ++i) {
    // Normalised 0 -> grey 0.5 * 255 after denormalising.
    mistakes.push_back({i, 0, 1, 0.9 - 0.1 * i, torch::zeros({1, 28, 28})});
  }
  mistakes[0].image.fill_(2.0);  // 2 * 0.25 + 0.5 = 1 -> white
  mistakes[1].image.fill_(-2.0);  // -> black
  const auto sheet = splitshare::explain::mistakes_sheet(mistakes, preprocess, kNames,
                                                         splitshare::explain::SheetOptions().columns(2));
  // 28 px enlarged 5x (min_size 128) = 140; 2 columns, 3 rows; captions 3 lines of 9 px + 4.
  EXPECT_EQ(sheet.sizes(), (std::vector<int64_t>{3, 12 + 3 * (140 + 31) + 2 * 6, 12 + 2 * 140 + 6}));
  EXPECT_EQ(sheet.scalar_type(), torch::kUInt8);
  EXPECT_EQ(sheet[0][6 + 70][6 + 70].item<int>(), 255);               // tile 0
  EXPECT_EQ(sheet[1][6 + 70][6 + 140 + 6 + 70].item<int>(), 0);      // tile 1, right of it
  EXPECT_EQ(sheet[2][6 + 171 + 6 + 70][6 + 70].item<int>(), 128);    // tile 2, second row
  EXPECT_LT(sheet.narrow(1, 6 + 140, 31).narrow(2, 6, 140).min().item<int>(), 100) << "caption text drawn";
  EXPECT_THROW(splitshare::explain::mistakes_sheet({}, preprocess, kNames), c10::Error);
}

TEST(PerClassCli, RefusesBadMisclassifiedValuesByName) {
  std::string out;
  EXPECT_NE(run_command(kCli + " eval --checkpoint x.pt --misclassified -1 --misclassified-out m.png", &out), 0);
  EXPECT_NE(out.find("--misclassified must be >= 0, got -1"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(run_command(kCli + " eval --checkpoint x.pt --misclassified 3", &out), 0);
  EXPECT_NE(out.find("--misclassified needs --misclassified-out"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(run_command(kCli + " eval --checkpoint a.pt --checkpoint b.pt --misclassified 3 --misclassified-out m.png",
                        &out), 0);
  EXPECT_NE(out.find("--misclassified takes one --checkpoint"), std::string::npos) << out;
}

TEST(PerClassCli, EvalJsonPerClassMisclassifiedSheetAndTrainPerClassJson) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TempDir dir;
  const auto run = dir.file("run");
  std::string log;
  ASSERT_EQ(run_command(kCli + " train --epochs 1 --limit-train 512 --limit-val 256 --width 8 --batch-size 64 "
                               "--no-progress --out " + run, &log), 0) << log;
  ASSERT_TRUE(std::filesystem::exists(run + "/per_class.json"));
  const auto metrics_line = read_file(run + "/metrics.jsonl");
  EXPECT_EQ(metrics_line.find("confusion"), std::string::npos) << "per-epoch records stay small";
  const auto png = dir.file("mistakes.png");
  std::string out;
  // Braces: run_command appends 2>&1, and the note eval prints on stderr is not JSON.
  ASSERT_EQ(run_command("{ " + kCli + " eval --checkpoint " + run + "/checkpoint.pt --limit-val 256 --json "
                               "--misclassified 3 --misclassified-out " + png + " 2>/dev/null; }", &out), 0) << out;
  const auto j = nlohmann::json::parse(out);
  ASSERT_EQ(j["per_class"].size(), 10u);
  int64_t support = 0;
  for (const auto& c : j["per_class"]) support += c["support"].get<int64_t>();
  EXPECT_EQ(support, j["samples"].get<int64_t>());
  EXPECT_EQ(j["confusion"]["classes"][9], "Ankle boot");
  int64_t diagonal = 0;
  for (int64_t c = 0; c < 10; ++c) diagonal += j["confusion"]["matrix"][c][c].get<int64_t>();
  EXPECT_NEAR(double(diagonal) / support, j["top1"].get<double>(), 1e-12);
  ASSERT_EQ(j["heads"].size(), 4u);
  EXPECT_EQ(j["heads"][0]["per_class"].size(), 10u);
  EXPECT_LE(j["confused_pairs"].size(), 10u);
  EXPECT_TRUE(j["macro"]["f1"].is_number());
  // The run's own per_class.json describes the same (last-epoch) weights.
  const auto saved = nlohmann::json::parse(read_file(run + "/per_class.json"));
  EXPECT_EQ(saved["confusion"]["matrix"], j["confusion"]["matrix"]);

  ASSERT_EQ(j["misclassified"]["samples"].size(), 3u) << "a 1-epoch model makes at least 3 mistakes";
  const auto& first = j["misclassified"]["samples"][0];
  EXPECT_NE(first["true_index"], first["predicted_index"]);
  EXPECT_GE(first["confidence"].get<double>(), j["misclassified"]["samples"][2]["confidence"].get<double>());
  const auto bytes = read_file(png);
  ASSERT_GT(bytes.size(), 24u);
  EXPECT_EQ(bytes.substr(1, 3), "PNG");
  EXPECT_EQ(png_u32(bytes, 16), 12 + 3 * 140 + 2 * 6);  // IHDR width: 3 tiles of 28 px x 5
  EXPECT_EQ(png_u32(bytes, 20), 12 + 140 + 31);         // height: one row with its caption

  out.clear();
  ASSERT_EQ(run_command(kCli + " eval --checkpoint " + run + "/checkpoint.pt --limit-val 256", &out), 0) << out;
  EXPECT_NE(out.find("per class, worst recall first"), std::string::npos) << out;
  EXPECT_NE(out.find("most confused (true -> predicted)"), std::string::npos) << out;
  const auto html = read_file(run + "/report.html");
  EXPECT_NE(html.find("Per-class validation metrics"), std::string::npos);
}
