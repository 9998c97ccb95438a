#include <splitshare/nn/batch_norm.h>

namespace splitshare::nn {

BatchNormImpl::BatchNormImpl(torch::nn::BatchNormOptions options_) : options(std::move(options_)) { reset(); }

void BatchNormImpl::reset() {
  const auto c = options.num_features();
  TORCH_CHECK(c >= 1, "BatchNorm: num_features must be positive, got ", c);
  if (options.affine()) {
    weight = register_parameter("weight", torch::ones({c}));
    bias = register_parameter("bias", torch::zeros({c}));
  }
  if (options.track_running_stats()) {
    running_mean = register_buffer("running_mean", torch::zeros({c}));
    running_var = register_buffer("running_var", torch::ones({c}));
    num_batches_tracked = register_buffer("num_batches_tracked", torch::tensor(0, torch::dtype(torch::kLong)));
  }
}

torch::Tensor BatchNormImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK((input.dim() == 2 || input.dim() == 4) && input.size(1) == options.num_features(),
              "BatchNorm: expected input [N, ", options.num_features(), "] or [N, ", options.num_features(),
              ", H, W], got ", input.sizes());
  const bool tracking = options.track_running_stats();
  if (is_training() && synchronised()) {
    return sync_batch_norm(input, weight, bias, running_mean, running_var, num_batches_tracked, options, collective);
  }
  // torch::nn::BatchNorm2d's forward, step for step (same kernels, same numbers).
  double factor = options.momentum().value_or(0.0);
  if (is_training() && tracking) {
    num_batches_tracked += 1;
    if (!options.momentum().has_value()) factor = 1.0 / num_batches_tracked.item<double>();
  }
  return torch::batch_norm(input, weight, bias, running_mean, running_var, is_training() || !tracking, factor,
                           options.eps(), at::globalContext().userEnabledCuDNN());
}

void BatchNormImpl::pretty_print(std::ostream& stream) const {
  stream << "splitshare::nn::BatchNorm(" << options.num_features() << ", eps=" << options.eps() << ", momentum=";
  if (options.momentum().has_value()) {
    stream << *options.momentum();
  } else {
    stream << "None";
  }
  stream << (synchronised() ? ", synchronised)" : ")");
}

int64_t convert_sync_batch_norm(torch::nn::Module& module, const AllReduceSum& all_reduce) {
  auto shared = all_reduce ? std::make_shared<const AllReduceSum>(all_reduce) : nullptr;
  int64_t layers = 0;
  for (auto& m : module.modules(/*include_self=*/true)) {
    if (auto* bn = m->as<BatchNormImpl>()) {
      bn->collective = shared;
      ++layers;
    }
  }
  return layers;
}

}  // namespace splitshare::nn
