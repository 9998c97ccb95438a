// A head-selection gate inside a model (issue #21): the model's logits become the gated
// combination and the heads' mean stays in `ungated`; predict's folded model gives the same;
// a checkpoint keeps the gate under `gate.*` with metadata saying so; eval reports the gate next
// to the mean, the label-free rules and the oracle.
#include <splitshare/eval/metrics.h>
#include <splitshare/nn/gate.h>
#include <splitshare/nn/inference.h>
#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/train/select.h>
#include <splitshare/checkpoint/import.h>

#include <nlohmann/json.hpp>

#include "export_cases.h"
#include "support.h"
#include "tiny_models.h"

namespace sn = splitshare::nn;
namespace tr = splitshare::train;
namespace se = splitshare::eval;
using splitshare::testing::eval_forward;
using splitshare::testing::expect_close;
using splitshare::testing::expect_error;
using splitshare::testing::gate_cases;
using splitshare::testing::metadata_of;
using splitshare::testing::TempDir;

namespace {

constexpr double kTolerance = 1e-4;

// The gate's combination computed by hand from the model's parts.
torch::Tensor by_hand(sn::ClassifierImpl& model, const torch::Tensor& x, const sn::HeadOutput& out) {
  torch::NoGradGuard no_grad;
  const auto pooled = model.forward_features(x).mean({2, 3});
  const auto w = model.gate->weights(pooled, torch::stack(out.head_logits));  // [N, S]
  return torch::einsum("ns,snk->nk", {w, torch::stack(out.head_logits)});
}

}  // namespace

TEST(GatedModel, LogitsAreTheGatesCombinationAndTheMeanIsKept) {
  for (const auto& c : gate_cases()) {
    SCOPED_TRACE(c.name());
    auto model = splitshare::testing::gated(c, 3);
    const auto x = torch::randn({4, 3, c.model.size, c.model.size});
    const auto out = eval_forward(*model, x);
    ASSERT_TRUE(out.ungated.defined());
    const auto heads = torch::stack(out.head_logits);
    expect_close(out.ungated, heads.mean(0), 1e-5);
    expect_close(out.logits, by_hand(*model, x, out), 1e-5);
    // The gate matters: its combination is not the mean.
    EXPECT_GT((out.logits - out.ungated).abs().max().item<double>(), 1e-2);
    if (c.hard) {
      // One head per sample.
      const auto picked = (heads - out.logits.unsqueeze(0)).abs().amax({2}).lt(1e-6).sum(0);
      EXPECT_TRUE(picked.ge(1).all().item<bool>()) << picked;
    }
    // predict's and eval's folded model.
    const auto folded = sn::InferenceModel(*model).forward(x);
    expect_close(folded.logits, out.logits, kTolerance);
    expect_close(folded.ungated, out.ungated, kTolerance);
    expect_close(torch::stack(folded.head_logits), heads, kTolerance);
  }
}

TEST(GatedModel, CheckpointKeepsTheGateUnderGateNamesWithMetadataSayingSo) {
  TempDir dir;
  const auto c = gate_cases()[2];  // a hidden layer: gate.fc1.* and gate.fc2.*
  auto plain = splitshare::testing::randomised(c.model, 5);
  const auto meta = metadata_of(plain->options, c.model.size);
  tr::save_checkpoint(*plain, meta, dir.file("plain.pt"));
  auto gate = splitshare::testing::random_gate(*plain, c.input, c.hidden, c.hard, 6);
  tr::save_gated_checkpoint(*plain, meta, gate, {{"checkpoint", "plain.pt"}}, dir.file("gated.pt"));

  const auto tensors = tr::read_archive_tensors(dir.file("gated.pt"));
  for (const auto* name : {"gate.fc1.weight", "gate.fc1.bias", "gate.fc2.weight", "gate.fc2.bias"}) {
    EXPECT_TRUE(tensors.count(name)) << name;
  }
  EXPECT_FALSE(tr::read_archive_tensors(dir.file("plain.pt")).count("gate.fc1.weight"));
  auto loaded = tr::load_checkpoint(dir.file("gated.pt"));
  loaded.model->eval();
  ASSERT_TRUE(loaded.model->gate);
  ASSERT_TRUE(loaded.metadata.model.gate().has_value());
  EXPECT_EQ(loaded.metadata.model.gate()->input(), c.input);
  EXPECT_EQ(loaded.metadata.model.gate()->hidden(), c.hidden);
  EXPECT_EQ(loaded.metadata.extra["select"]["checkpoint"], "plain.pt");
  const auto json = tr::to_json(loaded.metadata);
  EXPECT_EQ(json["gate"]["input"], "features");
  EXPECT_EQ(json["version"], 2);
  EXPECT_EQ(tr::to_json(tr::read_checkpoint_metadata(dir.file("plain.pt")))["version"], 1);
  EXPECT_FALSE(tr::to_json(tr::read_checkpoint_metadata(dir.file("plain.pt"))).contains("gate"));
  const auto x = torch::randn({3, 3, c.model.size, c.model.size});
  expect_close(eval_forward(*loaded.model, x).logits, eval_forward(*plain, x).logits, 1e-5);
  EXPECT_TRUE(eval_forward(*tr::load_checkpoint(dir.file("plain.pt")).model, x).ungated.numel() == 0);
}

TEST(GatedModel, FineTuningFromAGatedCheckpointLeavesTheGateBehind) {
  TempDir dir;
  auto model = splitshare::testing::gated(gate_cases()[0], 7);
  tr::save_checkpoint(*model, metadata_of(model->options, 8), dir.file("gated.pt"));
  auto options = model->options;
  options.gate(std::nullopt);
  auto fresh = sn::make_classifier(options);
  const auto report = tr::transfer_weights(*fresh, tr::read_archive_tensors(dir.file("gated.pt")), "gated.pt");
  EXPECT_TRUE(report.head_loaded);
  ASSERT_FALSE(report.notices.empty());
  EXPECT_NE(report.notices.back().find("gated.pt: its head-selection gate (2 gate.* tensors) is not carried over"),
            std::string::npos);
  fresh->eval();
  const auto x = torch::randn({2, 3, 8, 8});
  expect_close(eval_forward(*fresh, x).logits, eval_forward(*model, x).ungated, 1e-5);
}

TEST(GatedModel, RefusesAGateThatDoesNotFitByName) {
  auto ssm = splitshare::testing::tiny_model(splitshare::testing::ssm_head());
  const sn::Gate three(sn::GateOptions(3, ssm->feature_dim(), splitshare::testing::kClasses));
  EXPECT_NE(expect_error([&] { ssm->set_gate(three); }).find("gate built for 3 heads"), std::string::npos);
  EXPECT_NE(expect_error([&] { ssm->set_gate(three); }).find("the model has 4 heads (ssm head)"), std::string::npos);
  auto linear = splitshare::testing::tiny_model(sn::HeadOptions().kind(sn::HeadKind::kLinear));
  const sn::Gate two(sn::GateOptions(2, linear->feature_dim(), splitshare::testing::kClasses));
  EXPECT_NE(expect_error([&] { linear->set_gate(two); }).find("the model has 1 heads (linear head)"),
            std::string::npos);
  // A checkpoint whose metadata and tensors disagree about the gate is refused.
  TempDir dir;
  tr::CheckpointMetadata meta = metadata_of(ssm->options, 12);
  meta.model.gate(sn::GateOptions(4, ssm->feature_dim(), splitshare::testing::kClasses));
  EXPECT_NE(expect_error([&] { tr::save_checkpoint(*ssm, meta, dir.file("x.pt")); })
                .find("describes a gate the model lacks"),
            std::string::npos);
  auto json = tr::to_json(meta);
  json["gate"]["heads"] = 1;
  EXPECT_NE(expect_error([&] { tr::metadata_from_json(json, "m.json"); }).find("m.json: checkpoint metadata field 'gate'"),
            std::string::npos);
  json["gate"]["heads"] = 4;
  json["gate"]["input"] = "pixels";
  EXPECT_NE(expect_error([&] { tr::metadata_from_json(json, "m.json"); }).find("unknown gate input 'pixels'"),
            std::string::npos);
}

TEST(GatedModel, EvalReportsTheGateNextToTheMeanAndTheOracle) {
  // 4 samples, 2 heads, labels 0: the mean is right on 1, the gate on 2, some head on 3.
  const auto labels = torch::zeros({4}, torch::kLong);
  auto right = [](double v) { return torch::tensor({{v, 0.0}}); };
  const auto h0 = torch::cat({right(1), right(1), right(-1), right(-1)}).to(torch::kFloat);
  const auto h1 = torch::cat({right(1), right(-3), right(0.5), right(-1)}).to(torch::kFloat);
  sn::HeadOutput out{torch::cat({right(1), right(1), right(-1), right(-1)}).to(torch::kFloat), {h0, h1}};
  out.ungated = (h0 + h1) / 2;  // right on sample 0 only
  se::Accumulator acc;
  acc.add(out, labels);
  const auto r = acc.result();
  EXPECT_TRUE(r.gated);
  EXPECT_DOUBLE_EQ(r.ungated_top1, 0.25);
  EXPECT_DOUBLE_EQ(r.top1, 0.5);
  EXPECT_DOUBLE_EQ(r.oracle, 0.75);
  EXPECT_DOUBLE_EQ(r.mean_top1(), 0.25);
  const auto json = se::to_json(r);
  EXPECT_DOUBLE_EQ(json["selection"]["mean"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(json["selection"]["gate"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(json["selection"]["gap_closed"].get<double>(), 0.5);
  const auto back = se::from_json(json);
  EXPECT_TRUE(back.gated);
  EXPECT_DOUBLE_EQ(back.ungated_top1, 0.25);
  // Without a gate there is no gate entry and the mean is top-1.
  se::Accumulator plain;
  plain.add(sn::HeadOutput{out.ungated, {h0, h1}}, labels);
  EXPECT_FALSE(se::to_json(plain.result())["selection"].contains("gate"));
  EXPECT_NE(expect_error([&] { plain.add(out, labels); }).find("gated and ungated outputs mixed"), std::string::npos);
}

TEST(GatedModel, EvaluateUsesTheGateAndCountsTheMeanAsTheModelsOwn) {
  auto data = splitshare::testing::noise_data();
  auto model = splitshare::testing::tiny_model(splitshare::testing::ssm_head());
  const auto plain = se::evaluate(*model, *data.val);
  model->set_gate(splitshare::testing::random_gate(*model, sn::GateInput::kLogits, 0, true, 9));
  const auto gated = se::evaluate(*model, *data.val);
  EXPECT_FALSE(plain.gated);
  EXPECT_TRUE(gated.gated);
  EXPECT_DOUBLE_EQ(gated.ungated_top1, plain.top1);
  EXPECT_DOUBLE_EQ(gated.oracle, plain.oracle);
  // A hard gate takes one head's answer: never right where no head is.
  EXPECT_LE(gated.top1, gated.oracle);
}
