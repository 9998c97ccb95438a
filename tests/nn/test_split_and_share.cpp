#include <splitshare/nn/split_and_share.h>
#include <splitshare/util/runtime.h>

#include "nn/kernels/matmul.h"
#include "support.h"

namespace sn = splitshare::nn;
using splitshare::testing::expect_close;

namespace {

// A naive reference written here, independent of the module: BatchNorm over the
// prefix with batch statistics, ReLU, Linear, then the mean over heads.
torch::Tensor naive_head(const torch::Tensor& x, int64_t width, const torch::Tensor& gamma, const torch::Tensor& beta,
                         const torch::Tensor& w, const torch::Tensor& b, bool norm) {
  auto p = x.narrow(1, 0, width);
  if (norm) {
    auto mean = p.mean(0, true);
    auto var = (p - mean).pow(2).mean(0, true);
    p = torch::relu((p - mean) / torch::sqrt(var + 1e-5) * gamma + beta);
  }
  return p.matmul(w.t()) + b;
}

sn::SplitAndShare make(int64_t c, int64_t k, int64_t s, bool fused, bool last_plain = false) {
  torch::manual_seed(0);
  sn::SplitAndShare m(sn::SplitAndShareOptions(c, k).splits(s).fused(fused).last_plain(last_plain));
  // Non-trivial affine parameters so a wrong index shows.
  torch::NoGradGuard g;
  for (auto& p : m->parameters()) p.uniform_(-1, 1);
  return m;
}

}  // namespace

TEST(SplitAndShare, NamesFollowThePinnedScheme) {
  // The default (BatchNorm on the first S-1 splits) and Algorithm 1's (on all S).
  for (const bool last_plain : {true, false}) {
    sn::SplitAndShare m(sn::SplitAndShareOptions(8, 3).splits(4).last_plain(last_plain));
    std::vector<std::string> names;
    for (auto& p : m->named_parameters()) names.push_back(p.key());
    for (auto& p : m->named_buffers()) names.push_back(p.key());
    const int norms = last_plain ? 3 : 4;
    for (int i = 0; i < 4; ++i) {
      for (auto n : {"fc.%d.weight", "fc.%d.bias", "bn.%d.weight", "bn.%d.bias", "bn.%d.running_mean",
                     "bn.%d.running_var", "bn.%d.num_batches_tracked"}) {
        char buf[64];
        std::snprintf(buf, sizeof buf, n, i);
        const bool expected = n[0] == 'f' || i < norms;
        EXPECT_EQ(std::find(names.begin(), names.end(), buf) != names.end(), expected) << buf;
      }
    }
    EXPECT_EQ(names.size(), 4u * 2u + static_cast<size_t>(norms) * 5u);
    EXPECT_EQ(m->fc[2]->as<torch::nn::Linear>()->weight.sizes(), (std::vector<int64_t>{3, 6}));
  }
  EXPECT_TRUE(sn::SplitAndShareOptions(8, 3).last_plain());  // Section 3's text and Table 4's count
}

TEST(SplitAndShare, RejectsChannelsNotDivisibleBySplits) {
  try {
    sn::SplitAndShare m(sn::SplitAndShareOptions(10, 3).splits(4));
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("(10)"), std::string::npos) << what;
    EXPECT_NE(what.find("(4)"), std::string::npos) << what;
  }
}

TEST(SplitAndShare, MatchesNaiveReferenceInTraining) {
  for (bool fused : {false, true}) {
    auto m = make(12, 5, 4, fused);
    m->train();
    auto x = torch::randn({7, 12});
    auto out = m->forward(x);
    std::vector<torch::Tensor> heads;
    for (int i = 0; i < 4; ++i) {
      auto* bn = m->bn[i]->as<splitshare::nn::BatchNormImpl>();
      auto* fc = m->fc[i]->as<torch::nn::Linear>();
      heads.push_back(naive_head(x, 3 * (i + 1), bn->weight, bn->bias, fc->weight, fc->bias, true));
      expect_close(out.head_logits[i], heads.back(), 1e-5, 1e-5);
    }
    expect_close(out.logits, torch::stack(heads).mean(0), 1e-5, 1e-5);
  }
}

TEST(SplitAndShare, FusedEqualsReferenceForwardBackwardAndRunningStats) {
  for (bool last_plain : {false, true}) {
    auto a = make(16, 6, 4, /*fused=*/false, last_plain);
    auto b = make(16, 6, 4, /*fused=*/true, last_plain);
    auto x1 = torch::randn({9, 16}, torch::requires_grad());
    auto x2 = x1.detach().clone().requires_grad_();
    auto target = torch::randint(0, 6, {9});
    for (int step = 0; step < 2; ++step) {
      auto la = torch::nn::functional::cross_entropy(a->forward(x1).logits, target);
      auto lb = torch::nn::functional::cross_entropy(b->forward(x2).logits, target);
      expect_close(la, lb, 1e-6);
      la.backward();
      lb.backward();
    }
    expect_close(x1.grad(), x2.grad(), 1e-5, 1e-5);
    auto pa = a->named_parameters(), pb = b->named_parameters();
    for (auto& item : pa) expect_close(item.value().grad(), pb[item.key()].grad(), 1e-5, 1e-5);
    auto ba = a->named_buffers(), bb = b->named_buffers();
    for (auto& item : ba) expect_close(item.value(), bb[item.key()], 1e-6, 1e-6);
    EXPECT_EQ(bb["bn.0.num_batches_tracked"].item<int64_t>(), 2);
    // Evaluation uses each head's own running statistics.
    a->eval();
    b->eval();
    auto y = torch::randn({5, 16});
    expect_close(a->forward(y).logits, b->forward(y).logits, 1e-5, 1e-5);
  }
}

TEST(SplitAndShare, EachHeadsBatchNormIsBatchNormOverItsPrefix) {
  auto m = make(8, 3, 2, true);
  m->train();
  auto x = torch::randn({6, 8});
  m->forward(x);
  // After one step from (0, 1) with momentum 0.1, running stats reflect the prefix only.
  auto* bn1 = m->bn[0]->as<splitshare::nn::BatchNormImpl>();
  auto* bn2 = m->bn[1]->as<splitshare::nn::BatchNormImpl>();
  expect_close(bn1->running_mean, 0.1 * x.narrow(1, 0, 4).mean(0), 1e-6);
  expect_close(bn2->running_mean, 0.1 * x.mean(0), 1e-6);
  expect_close(bn2->running_var, 0.9 + 0.1 * x.var(0, /*unbiased=*/true), 1e-5);
}

TEST(SplitAndShare, GradientsReachOnlyTheChannelsAHeadSees) {
  for (bool fused : {false, true}) {
    auto m = make(8, 3, 4, fused);
    auto x = torch::randn({5, 8}, torch::requires_grad());
    auto out = m->forward(x);
    // Head 0 sees channels 0-1 only.
    out.head_logits[0].sum().backward();
    auto g = x.grad();
    EXPECT_GT(g.narrow(1, 0, 2).abs().sum().item<double>(), 0.0);
    EXPECT_EQ(g.narrow(1, 2, 6).abs().sum().item<double>(), 0.0);
    // Head 1's FC gets no gradient from head 0's loss.
    auto w1 = m->fc[1]->as<torch::nn::Linear>()->weight.grad();
    EXPECT_TRUE(!w1.defined() || w1.abs().sum().item<double>() == 0.0);
    // Head 3 reaches every channel.
    x.mutable_grad() = torch::Tensor();
    auto out2 = m->forward(x);
    out2.head_logits[3].sum().backward();
    EXPECT_GT(x.grad().narrow(1, 6, 2).abs().sum().item<double>(), 0.0);
  }
}

TEST(SplitAndShare, SumReductionAndLastPlainVariant) {
  torch::manual_seed(1);
  sn::SplitAndShare mean_head(sn::SplitAndShareOptions(8, 3).splits(4));
  sn::SplitAndShare sum_head(sn::SplitAndShareOptions(8, 3).splits(4).mean(false));
  {
    torch::NoGradGuard g;
    auto src = mean_head->named_parameters();
    for (auto& item : sum_head->named_parameters()) item.value().copy_(src[item.key()]);
  }
  auto x = torch::randn({4, 8});
  expect_close(sum_head->forward(x).logits, 4.0 * mean_head->forward(x).logits, 1e-5, 1e-5);

  sn::SplitAndShare plain(sn::SplitAndShareOptions(8, 3).splits(4).last_plain(true));
  EXPECT_EQ(plain->bn->size(), 3u);
  auto out = plain->forward(x);
  auto* fc = plain->fc[3]->as<torch::nn::Linear>();
  expect_close(out.head_logits[3], x.matmul(fc->weight.t()) + fc->bias, 1e-5, 1e-5);
}

TEST(SplitAndShare, FusedBackwardMatchesReferenceForHeadLossesAndInEvaluation) {
  // Per-head losses (SSM-individual, Grad-CAM per split) send gradients into the head
  // outputs, not only the combined logits; evaluation mode uses running statistics.
  for (bool last_plain : {false, true}) {
    for (bool training : {true, false}) {
      SCOPED_TRACE(std::string(training ? "train" : "eval") + (last_plain ? " last_plain" : ""));
      auto a = make(16, 6, 4, /*fused=*/false, last_plain);
      auto b = make(16, 6, 4, /*fused=*/true, last_plain);
      a->train(training);
      b->train(training);
      auto x1 = torch::randn({9, 16}, torch::requires_grad());
      auto x2 = x1.detach().clone().requires_grad_();
      auto target = torch::randint(0, 6, {9});
      auto loss = [&](const sn::HeadOutput& out) {
        auto l = 0.5 * torch::nn::functional::cross_entropy(out.logits, target);
        for (size_t i = 0; i < out.head_logits.size(); i += 2) {
          l = l + torch::nn::functional::cross_entropy(out.head_logits[i], target);
        }
        return l;
      };
      auto la = loss(a->forward(x1));
      auto lb = loss(b->forward(x2));
      expect_close(la, lb, 1e-5);
      la.backward();
      lb.backward();
      expect_close(x1.grad(), x2.grad(), 1e-5, 1e-5);
      auto pa = a->named_parameters(), pb = b->named_parameters();
      for (auto& item : pa) {
        SCOPED_TRACE(item.key());
        const auto& ga = item.value().grad();
        const auto& gb = pb[item.key()].grad();
        ASSERT_EQ(ga.defined(), gb.defined());
        if (ga.defined()) expect_close(ga, gb, 1e-5, 1e-5);
      }
    }
  }
}

TEST(SplitAndShare, ThreadedProductsMatchTheNaiveReferenceForwardAndBackward) {
  // Sizes where nn::parallel_mm cuts every product of the heads across two threads
  // (the CLI's configuration), against the naive head through torch's own matmul.
  splitshare::util::configure_threads(2);
  if (!splitshare::util::blas_single_threaded_in_pool()) GTEST_SKIP() << "libtorch's BLAS is neither OpenBLAS nor MKL";
  const int64_t c = 512, k = 200, n = 128, s = 4;
  for (bool fused : {false, true}) {
    SCOPED_TRACE(fused ? "fused" : "straightforward");
    auto m = make(c, k, s, fused);
    m->train();
    auto x = torch::randn({n, c});
    ASSERT_TRUE(sn::parallel_mm_splits(m->fc[0]->as<torch::nn::Linear>()->weight.detach(),
                                       x.narrow(1, 0, c / s).t()));
    auto x1 = x.clone().requires_grad_();
    auto x2 = x.clone().requires_grad_();
    auto target = torch::randint(0, k, {n});
    auto out = m->forward(x1);
    std::vector<torch::Tensor> heads;
    std::vector<torch::Tensor> leaves;  // copies of every parameter, for the naive gradients
    for (int64_t i = 0; i < s; ++i) {
      auto* bn = m->bn[i]->as<splitshare::nn::BatchNormImpl>();
      auto* fc = m->fc[i]->as<torch::nn::Linear>();
      for (const auto& p : {bn->weight, bn->bias, fc->weight, fc->bias}) {
        leaves.push_back(p.detach().clone().requires_grad_());
      }
      const auto* l = &leaves[4 * i];
      heads.push_back(naive_head(x2, (i + 1) * c / s, l[0], l[1], l[2], l[3], true));
      expect_close(out.head_logits[i], heads[i], 1e-4, 1e-4);
    }
    auto naive = torch::stack(heads).mean(0);
    expect_close(out.logits, naive, 1e-4, 1e-4);
    auto loss = [&](const torch::Tensor& logits, const std::vector<torch::Tensor>& per_head) {
      return torch::nn::functional::cross_entropy(logits, target) +
             0.5 * torch::nn::functional::cross_entropy(per_head[1], target);
    };
    loss(out.logits, out.head_logits).backward();
    loss(naive, heads).backward();
    expect_close(x1.grad(), x2.grad(), 1e-4, 1e-5);
    for (int64_t i = 0; i < s; ++i) {
      SCOPED_TRACE("split " + std::to_string(i));
      auto* bn = m->bn[i]->as<splitshare::nn::BatchNormImpl>();
      auto* fc = m->fc[i]->as<torch::nn::Linear>();
      const torch::Tensor params[] = {bn->weight, bn->bias, fc->weight, fc->bias};
      for (int j = 0; j < 4; ++j) expect_close(params[j].grad(), leaves[4 * i + j].grad(), 1e-4, 1e-5);
    }
  }
}

TEST(SplitAndShare, NaNFeaturesGiveNaNLogitsAsTheReferenceDoes) {
  // The trainer stops on a non-finite loss; a fused kernel that clamped NaN to 0 in its
  // ReLU would hide a broken batch behind finite logits.
  for (bool training : {true, false}) {
    for (bool fused : {false, true}) {
      SCOPED_TRACE(std::string(training ? "train" : "eval") + (fused ? " fused" : " straightforward"));
      auto m = make(16, 6, 4, fused);
      m->train(training);
      auto x = torch::randn({9, 16});
      x[2][1] = std::numeric_limits<float>::quiet_NaN();
      torch::NoGradGuard no_grad;
      auto out = m->forward(x);
      EXPECT_FALSE(torch::isfinite(out.logits).all().item<bool>());
      for (const auto& h : out.head_logits) EXPECT_TRUE(torch::isnan(h[2]).any().item<bool>());
    }
  }
}

TEST(SplitAndShare, FusedEqualsReferenceInBfloat16ThroughTheOperatorPath) {
  // bfloat16 (like CUDA) takes the fused backward's torch-operator path rather than
  // the CPU float kernel.
  auto a = make(16, 6, 4, /*fused=*/false);
  auto b = make(16, 6, 4, /*fused=*/true);
  a->to(torch::kBFloat16);
  b->to(torch::kBFloat16);
  auto x1 = torch::randn({9, 16}).to(torch::kBFloat16).requires_grad_();
  auto x2 = x1.detach().clone().requires_grad_();
  auto target = torch::randint(0, 6, {9});
  auto la = torch::nn::functional::cross_entropy(a->forward(x1).logits.to(torch::kFloat), target);
  auto lb = torch::nn::functional::cross_entropy(b->forward(x2).logits.to(torch::kFloat), target);
  expect_close(la, lb, 5e-2, 5e-2);
  la.backward();
  lb.backward();
  expect_close(x1.grad().to(torch::kFloat), x2.grad().to(torch::kFloat), 5e-2, 5e-2);
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (auto& item : pa) {
    SCOPED_TRACE(item.key());
    expect_close(item.value().grad().to(torch::kFloat), pb[item.key()].grad().to(torch::kFloat), 5e-2, 5e-2);
  }
}
