// FusedSGD and FusedAdamW against torch::optim's SGD and AdamW: same updates, same state.
#include <gtest/gtest.h>

#include <splitshare/train/fused_optimizers.h>
#include <splitshare/train/optimizer.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace tr = splitshare::train;

namespace {

// A channels-last convolution weight, a bias and a matrix: leaves, identical for each call.
std::vector<torch::Tensor> make_params(torch::Device device = torch::kCPU) {
  torch::manual_seed(3);
  std::vector<torch::Tensor> p = {torch::randn({8, 4, 3, 3}).contiguous(torch::MemoryFormat::ChannelsLast),
                                  torch::randn({8}), torch::randn({5, 7})};
  for (auto& t : p) t = t.to(device).requires_grad_();
  return p;
}

// Gradients of step `i` in each parameter's own layout; the bias has none at step 0, so it starts
// its state a step later than the weight in its group.
void set_grads(std::vector<torch::Tensor>& params, int i) {
  torch::manual_seed(100 + i);
  for (size_t k = 0; k < params.size(); ++k) {
    auto g = torch::randn_like(params[k], torch::TensorOptions().device(torch::kCPU));
    params[k].mutable_grad() = (k == 1 && i == 0) ? torch::Tensor() : g.to(params[k].device());
  }
}

// Two groups: conv weight + bias at the default rate, the matrix at half of it.
template <typename Options>
std::vector<torch::optim::OptimizerParamGroup> groups(const std::vector<torch::Tensor>& p, Options o) {
  auto half = std::make_unique<Options>(o);
  half->lr(o.lr() / 2);
  return {torch::optim::OptimizerParamGroup({p[0], p[1]}, std::make_unique<Options>(o)),
          torch::optim::OptimizerParamGroup({p[2]}, std::move(half))};
}

void expect_close(const torch::Tensor& a, const torch::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.defined(), b.defined()) << what;
  if (!a.defined()) return;
  const auto c = b.to(a.device());
  EXPECT_TRUE(torch::allclose(a, c, 1e-5, 1e-6)) << what << ": largest difference " << (a - c).abs().max().item<double>();
}

// The state of one parameter in each optimizer (null where it has none).
template <typename State>
std::pair<State*, State*> states_of(torch::optim::Optimizer& a, const torch::Tensor& p, torch::optim::Optimizer& b,
                                    const torch::Tensor& q) {
  auto sa = a.state().find(p.unsafeGetTensorImpl());
  auto sb = b.state().find(q.unsafeGetTensorImpl());
  return {sa == a.state().end() ? nullptr : &static_cast<State&>(*sa->second),
          sb == b.state().end() ? nullptr : &static_cast<State&>(*sb->second)};
}

// Runs `steps` steps of `Ref` (on the CPU) and `Fused` (on `fused_device`) on identical parameters
// and gradients, comparing every parameter after every step and calling `check(reference state,
// fused state, label)` on the states of those that have one in both.
template <typename Ref, typename Fused, typename Options, typename State>
void run_both(Options options, int steps, const std::string& name,
              const std::function<void(State&, State&, const std::string&)>& check,
              torch::Device fused_device = torch::kCPU) {
  auto p = make_params(), q = make_params(fused_device);
  Ref reference(groups(p, options), options);
  Fused fused(groups(q, options), options);
  for (int i = 0; i < steps; ++i) {
    set_grads(p, i);
    set_grads(q, i);
    reference.step();
    fused.step();
    EXPECT_TRUE(fused.last_step_fused()) << "step " << i;
    for (size_t k = 0; k < p.size(); ++k) {
      const auto label = name + ", step " + std::to_string(i) + ", parameter " + std::to_string(k);
      expect_close(p[k], q[k], label);
      auto [a, b] = states_of<State>(reference, p[k], fused, q[k]);
      ASSERT_EQ(a == nullptr, b == nullptr) << label << ": state";
      if (a) check(*a, *b, label);
    }
  }
}

}  // namespace

TEST(FusedOptimizers, SgdMatchesTorchSgdStepForStep) {
  const std::vector<std::pair<std::string, torch::optim::SGDOptions>> cases = {
      {"momentum + decay", torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(0.01)},
      {"nesterov", torch::optim::SGDOptions(0.1).momentum(0.9).nesterov(true).weight_decay(0.001)},
      {"dampening", torch::optim::SGDOptions(0.05).momentum(0.5).dampening(0.3)},
      {"no momentum", torch::optim::SGDOptions(0.2).weight_decay(0.1)}};
  for (const auto& [name, options] : cases) {
    run_both<torch::optim::SGD, tr::FusedSGD, torch::optim::SGDOptions, torch::optim::SGDParamState>(
        options, 4, name, [](auto& a, auto& b, const std::string& label) {
          expect_close(a.momentum_buffer(), b.momentum_buffer(), label + ": momentum buffer");
        });
  }
}

TEST(FusedOptimizers, AdamWMatchesTorchAdamWStepForStep) {
  for (bool amsgrad : {false, true}) {
    const auto options = torch::optim::AdamWOptions(0.01).weight_decay(0.05).amsgrad(amsgrad).betas({0.8, 0.99});
    run_both<torch::optim::AdamW, tr::FusedAdamW, torch::optim::AdamWOptions, torch::optim::AdamWParamState>(
        options, 4, amsgrad ? "amsgrad" : "adamw", [](auto& a, auto& b, const std::string& label) {
          EXPECT_EQ(a.step(), b.step()) << label << ": step count";
          expect_close(a.exp_avg(), b.exp_avg(), label + ": exp_avg");
          expect_close(a.exp_avg_sq(), b.exp_avg_sq(), label + ": exp_avg_sq");
          expect_close(a.max_exp_avg_sq(), b.max_exp_avg_sq(), label + ": max_exp_avg_sq");
        });
  }
}

TEST(FusedOptimizersCuda, SgdAndAdamWOnCudaMatchTorchOnTheCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  run_both<torch::optim::SGD, tr::FusedSGD, torch::optim::SGDOptions, torch::optim::SGDParamState>(
      torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(0.01), 3, "sgd on cuda",
      [](auto& a, auto& b, const std::string& label) {
        expect_close(a.momentum_buffer(), b.momentum_buffer(), label + ": momentum buffer");
      },
      torch::kCUDA);
  run_both<torch::optim::AdamW, tr::FusedAdamW, torch::optim::AdamWOptions, torch::optim::AdamWParamState>(
      torch::optim::AdamWOptions(0.01).weight_decay(0.05), 3, "adamw on cuda",
      [](auto& a, auto& b, const std::string& label) {
        EXPECT_EQ(a.step(), b.step()) << label << ": step count";
        expect_close(a.exp_avg_sq(), b.exp_avg_sq(), label + ": exp_avg_sq");
      },
      torch::kCUDA);
}

TEST(FusedOptimizers, FallBackToTorchWhereTheKernelDoesNotApply) {
  // A channels-last parameter with a contiguous (NCHW) gradient: the kernel walks raw storage, so
  // it must not run; the step is torch::optim::SGD's and still exact. The second time the
  // gradients come from the step's closure, so the check has to follow it.
  for (bool in_closure : {false, true}) {
    auto p = make_params(), q = make_params();
    const auto options = torch::optim::SGDOptions(0.1).momentum(0.9);
    torch::optim::SGD reference(p, options);
    tr::FusedSGD fused(q, options);
    auto nchw_grads = [](std::vector<torch::Tensor>& params) {
      set_grads(params, 1);
      params[0].mutable_grad() = params[0].grad().contiguous();
      return torch::zeros({});
    };
    for (auto* params : {&p, &q}) {
      if (!in_closure) nchw_grads(*params);
    }
    reference.step(in_closure ? [&] { return nchw_grads(p); } : torch::optim::Optimizer::LossClosure());
    fused.step(in_closure ? [&] { return nchw_grads(q); } : torch::optim::Optimizer::LossClosure());
    EXPECT_FALSE(fused.last_step_fused()) << "in closure: " << in_closure;
    for (size_t k = 0; k < p.size(); ++k) {
      EXPECT_TRUE(torch::equal(p[k], q[k])) << "parameter " << k << ", in closure: " << in_closure;
    }
  }
}

TEST(FusedOptimizers, TrainingOptimizersAreTheFusedOnesAndReturnTheClosuresLoss) {
  auto p = make_params();
  std::vector<tr::ParameterGroup> g{{p, 1.0, true}};
  auto sgd = tr::make_optimizer(g, tr::OptimizerOptions(), 0.1);
  auto adamw = tr::make_optimizer(g, tr::OptimizerOptions().kind(tr::OptimizerKind::kAdamW), 0.1);
  EXPECT_NE(dynamic_cast<tr::FusedSGD*>(sgd.get()), nullptr);
  EXPECT_NE(dynamic_cast<tr::FusedAdamW*>(adamw.get()), nullptr);
  auto loss = sgd->step([&] {
    sgd->zero_grad();
    auto l = p[0].pow(2).sum();
    l.backward();
    return l;
  });
  ASSERT_TRUE(loss.defined());
  EXPECT_GT(loss.item<double>(), 0);
  EXPECT_TRUE(dynamic_cast<tr::FusedSGD&>(*sgd).last_step_fused());
}
