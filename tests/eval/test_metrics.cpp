#include <splitshare/eval/metrics.h>

#include "support.h"

namespace se = splitshare::eval;

TEST(Metrics, TopKPerHeadOracleAndSelectionPolicies) {
  // 3 samples, 6 classes, 2 heads. Labels 0, 1, 2.
  auto labels = torch::tensor({0, 1, 2});
  auto h0 = torch::tensor({{5.f, 0.f, 0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 3.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 9.f, 0.f, 0.f}});  // right, wrong, wrong
  auto h1 = torch::tensor({{0.f, 2.f, 0.f, 0.f, 0.f, 0.f}, {0.f, 4.f, 0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f, 1.f, 0.f}});  // wrong, right, wrong
  splitshare::nn::HeadOutput out;
  out.head_logits = {h0, h1};
  out.logits = (h0 + h1) / 2;
  se::Accumulator acc;
  acc.keep_probabilities(true);
  acc.add(out, labels);
  auto r = acc.result();
  EXPECT_EQ(r.samples, 3);
  EXPECT_DOUBLE_EQ(r.head_top1[0], 1.0 / 3);
  EXPECT_DOUBLE_EQ(r.head_top1[1], 1.0 / 3);
  EXPECT_DOUBLE_EQ(r.oracle, 2.0 / 3);     // sample 2 is missed by both
  EXPECT_DOUBLE_EQ(r.top1, 2.0 / 3);       // mean logits: argmax 0, 1 (4/2 > 3/2), 3
  EXPECT_DOUBLE_EQ(r.most_confident, 2.0 / 3);
  // Sample 2: label 2 has logit 0 in both heads, which ties with four other classes
  // (top-5 of 6 classes keeps it or not depending on tie order), so only bound it.
  EXPECT_GE(r.top5, r.top1);
  EXPECT_EQ(r.probabilities.sizes(), (std::vector<int64_t>{3, 6}));
  auto json = se::to_json(r);
  EXPECT_EQ(json["heads"].size(), 2u);
  EXPECT_DOUBLE_EQ(json["oracle"].get<double>(), 2.0 / 3);
}

TEST(Metrics, EnsembleAveragesProbabilities) {
  se::EvalResult a, b;
  a.labels = b.labels = torch::tensor({0, 1});
  a.probabilities = torch::tensor({{0.9f, 0.1f}, {0.6f, 0.4f}});   // right, wrong
  b.probabilities = torch::tensor({{0.4f, 0.6f}, {0.1f, 0.9f}});   // wrong, right
  EXPECT_DOUBLE_EQ(se::ensemble_top1({a, b}), 1.0);                // (0.65, 0.35) and (0.35, 0.65)
  b.labels = torch::tensor({1, 1});
  EXPECT_THROW(se::ensemble_top1({a, b}), c10::Error);
}

TEST(Metrics, JsonRoundTripKeepsEveryFigure) {
  se::EvalResult r;
  r.top1 = 0.25;
  r.top5 = 0.75;
  r.loss = 1.5;
  r.samples = 12;
  r.head_top1 = {0.125, 0.375, 0.5};
  r.oracle = 0.875;
  r.most_confident = 0.3;
  r.confidence_weighted = 0.35;
  const auto back = se::from_json(se::to_json(r));
  EXPECT_EQ(back.top1, r.top1);
  EXPECT_EQ(back.top5, r.top5);
  EXPECT_EQ(back.loss, r.loss);
  EXPECT_EQ(back.samples, r.samples);
  EXPECT_EQ(back.head_top1, r.head_top1);
  EXPECT_EQ(back.oracle, r.oracle);
  EXPECT_EQ(back.most_confident, r.most_confident);
  EXPECT_EQ(back.confidence_weighted, r.confidence_weighted);
  auto missing = se::to_json(r);
  missing.erase("oracle");
  EXPECT_THROW(se::from_json(missing), nlohmann::json::exception);
}
