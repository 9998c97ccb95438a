#include "nn/kernels/matmul.h"
#include <splitshare/util/runtime.h>

#include "support.h"

namespace sn = splitshare::nn;
namespace su = splitshare::util;
using splitshare::testing::expect_close;

namespace {

// Two intra-op threads and a BLAS that runs single-threaded on pool threads (OpenBLAS set to
// one thread, or MKL), as the CLI runs; skips with another BLAS (parallel_mm is torch::mm there).
bool threaded_products() {
  su::configure_threads(2);
  return su::blas_single_threaded_in_pool() && at::get_num_threads() == 2;
}

}  // namespace

TEST(ParallelMm, EqualsTorchMmForRowAndColumnBlocksAndStridedOperands) {
  if (!threaded_products()) GTEST_SKIP() << "libtorch's BLAS is neither OpenBLAS nor MKL";
  torch::manual_seed(0);
  struct Case {
    int64_t m, k, n;
    bool transpose_a, transpose_b;
  };
  // Row blocks (m >= n), column blocks (m < n), sizes that do not divide evenly, and
  // transposed operands (what the heads' backward passes in).
  for (const auto& c : {Case{256, 300, 100, false, false}, Case{64, 512, 1000, false, true},
                        Case{1000, 256, 517, true, false}, Case{257, 333, 129, true, true}}) {
    SCOPED_TRACE(std::to_string(c.m) + "x" + std::to_string(c.k) + "x" + std::to_string(c.n));
    auto a = c.transpose_a ? torch::randn({c.k, c.m}).t() : torch::randn({c.m, c.k});
    auto b = c.transpose_b ? torch::randn({c.n, c.k}).t() : torch::randn({c.k, c.n});
    ASSERT_TRUE(sn::parallel_mm_splits(a, b));
    auto out = sn::parallel_mm(a, b);
    ASSERT_EQ(out.sizes(), torch::IntArrayRef({c.m, c.n}));
    expect_close(out, torch::mm(a, b), 1e-4, 1e-4);
  }
}

TEST(ParallelMm, FallsBackWhereItMustNotSplit) {
  if (!threaded_products()) GTEST_SKIP() << "libtorch's BLAS is neither OpenBLAS nor MKL";
  auto a = torch::randn({128, 256}), b = torch::randn({256, 128});
  EXPECT_TRUE(sn::parallel_mm_splits(a, b));
  EXPECT_FALSE(sn::parallel_mm_splits(a.narrow(0, 0, 8), b.narrow(1, 0, 8)));  // too small to be worth a thread
  EXPECT_FALSE(sn::parallel_mm_splits(a.to(torch::kDouble), b.to(torch::kDouble)));
  // A product that autograd must record goes to torch::mm, and keeps its history.
  auto leaf = a.clone().requires_grad_();
  EXPECT_FALSE(sn::parallel_mm_splits(leaf, b));
  auto recorded = sn::parallel_mm(leaf, b);
  EXPECT_TRUE(recorded.requires_grad());
  recorded.sum().backward();
  expect_close(leaf.grad(), b.sum(1).unsqueeze(0).expand({128, 256}), 1e-4, 1e-4);
  // Single-threaded libtorch: nothing to split.
  at::set_num_threads(1);
  EXPECT_FALSE(sn::parallel_mm_splits(a, b));
  expect_close(sn::parallel_mm(a, b), torch::mm(a, b), 1e-4, 1e-4);
}

TEST(ParallelMm, WorksUnderInferenceModeAndNoGradWithLeavesThatRequireGrad) {
  if (!threaded_products()) GTEST_SKIP() << "libtorch's BLAS is neither OpenBLAS nor MKL";
  auto a = torch::randn({300, 200}), b = torch::randn({200, 150});
  auto expected = torch::mm(a, b);
  {
    // The pool's worker threads are not in InferenceMode by themselves.
    torch::InferenceMode guard;
    auto out = sn::parallel_mm(a, b);
    EXPECT_TRUE(out.is_inference());
    expect_close(out, expected, 1e-4, 1e-4);
  }
  {
    torch::NoGradGuard no_grad;
    auto leaf = a.clone().requires_grad_();
    ASSERT_TRUE(sn::parallel_mm_splits(leaf, b));
    expect_close(sn::parallel_mm(leaf, b), expected, 1e-4, 1e-4);
  }
}

TEST(Linear, ForwardAndBackwardEqualTorchLinear) {
  for (bool threaded : {false, true}) {
    SCOPED_TRACE(threaded ? "threaded products" : "torch::mm");
    if (threaded && !threaded_products()) GTEST_SKIP() << "libtorch's BLAS is neither OpenBLAS nor MKL";
    torch::manual_seed(1);
    auto x = torch::randn({96, 384});
    auto w = torch::randn({200, 384}) * 0.05, bias = torch::randn({200});
    for (int needs = 1; needs < 8; ++needs) {  // every subset of {input, weight, bias} that needs a gradient
      SCOPED_TRACE("needs " + std::to_string(needs));
      auto x1 = x.clone().requires_grad_(needs & 1), w1 = w.clone().requires_grad_(needs & 2),
           b1 = bias.clone().requires_grad_(needs & 4);
      auto x2 = x.clone().requires_grad_(needs & 1), w2 = w.clone().requires_grad_(needs & 2),
           b2 = bias.clone().requires_grad_(needs & 4);
      auto grad_out = torch::randn({96, 200});
      auto ours = sn::linear(x1, w1, b1);
      auto ref = torch::nn::functional::linear(x2, w2, b2);
      expect_close(ours, ref, 1e-4, 1e-4);
      ours.backward(grad_out);
      ref.backward(grad_out);
      for (auto [g1, g2] : {std::pair{x1.grad(), x2.grad()}, {w1.grad(), w2.grad()}, {b1.grad(), b2.grad()}}) {
        ASSERT_EQ(g1.defined(), g2.defined());
        if (g1.defined()) expect_close(g1, g2, 1e-4, 1e-4);
      }
    }
    torch::InferenceMode guard;
    expect_close(sn::linear(x, w, bias), torch::nn::functional::linear(x, w, bias), 1e-4, 1e-4);
  }
}

TEST(ParallelMm, ManyProductsEqualTorchMmWhetherBalancedOrNot) {
  if (!threaded_products()) GTEST_SKIP() << "libtorch's BLAS is neither OpenBLAS nor MKL";
  torch::manual_seed(2);
  auto product = [](int64_t m, int64_t k, int64_t n) { return std::pair{torch::randn({m, k}), torch::randn({k, n})}; };
  // Balanced (each product whole on a thread: the SSM backward's 2 x 4 splits), one
  // product far larger than the rest (cut in blocks instead), and transposed operands.
  std::vector<std::vector<std::pair<torch::Tensor, torch::Tensor>>> sets = {
      {product(128, 200, 256), product(128, 400, 256), product(128, 600, 256), product(128, 800, 256),
       product(256, 128, 200), product(256, 128, 400), product(256, 128, 600), product(256, 128, 800)},
      {product(512, 512, 512), product(64, 64, 600)},
      {{torch::randn({300, 96}).t(), torch::randn({300, 200})}, {torch::randn({96, 300}), torch::randn({200, 300}).t()}},
  };
  for (size_t s = 0; s < sets.size(); ++s) {
    SCOPED_TRACE("set " + std::to_string(s));
    auto out = sn::parallel_mm_many(sets[s]);
    ASSERT_EQ(out.size(), sets[s].size());
    for (size_t i = 0; i < out.size(); ++i) expect_close(out[i], torch::mm(sets[s][i].first, sets[s][i].second), 1e-4, 1e-4);
  }
  EXPECT_TRUE(sn::parallel_mm_many({}).empty());
  EXPECT_THROW(sn::parallel_mm_many({{torch::randn({4, 5}), torch::randn({6, 7})}}), c10::Error);
}

TEST(Linear, ManyLayersEqualOneAfterAnotherWithAndWithoutGradients) {
  if (!threaded_products()) GTEST_SKIP() << "libtorch's BLAS is neither OpenBLAS nor MKL";
  torch::manual_seed(3);
  std::vector<torch::Tensor> inputs, weights, biases;
  for (int64_t width : {128, 256, 384, 512}) {
    inputs.push_back(torch::randn({96, width}));
    weights.push_back(torch::randn({200, width}) * 0.05);
    biases.push_back(torch::randn({200}));
  }
  {
    torch::NoGradGuard no_grad;
    auto out = sn::linear_many(inputs, weights, biases);
    ASSERT_EQ(out.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      expect_close(out[i], torch::nn::functional::linear(inputs[i], weights[i], biases[i]), 1e-4, 1e-4);
    }
  }
  // With gradients to record: one differentiable linear after another.
  auto w0 = weights[0].clone().requires_grad_();
  auto out = sn::linear_many({inputs[0], inputs[1]}, {w0, weights[1]}, {biases[0], biases[1]});
  out[0].sum().backward();
  expect_close(w0.grad(), inputs[0].sum(0).unsqueeze(0).expand({200, 128}), 1e-3, 1e-4);
  EXPECT_THROW(sn::linear_many(inputs, weights, {biases[0]}), c10::Error);
}
