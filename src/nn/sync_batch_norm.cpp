#include <splitshare/nn/sync_batch_norm.h>

namespace splitshare::nn {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Keeps the collective alive inside the autograd graph (saved_data holds IValues only).
struct AllReduceCapsule : torch::CustomClassHolder {
  explicit AllReduceCapsule(std::shared_ptr<const AllReduceSum> fn) : fn(std::move(fn)) {}
  std::shared_ptr<const AllReduceSum> fn;
};

std::vector<int64_t> reduce_dims(const torch::Tensor& x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

std::vector<int64_t> channel_shape(const torch::Tensor& x) {
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[1] = x.size(1);
  return shape;
}

torch::Tensor as_float(const torch::Tensor& x) {
  return x.scalar_type() == torch::kDouble || x.scalar_type() == torch::kFloat ? x : x.to(torch::kFloat);
}

// Normalises with precomputed global statistics; backward sums [sum dy, sum dy * x_hat]
// over the ranks (the statistics' share of the input gradient), while the weight and
// bias gradients stay local (the data-parallel gradient averaging handles them).
struct SyncBatchNormFunction : torch::autograd::Function<SyncBatchNormFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& input, const torch::Tensor& weight,
                               const torch::Tensor& bias, const torch::Tensor& mean, const torch::Tensor& invstd,
                               double count, c10::intrusive_ptr<AllReduceCapsule> all_reduce) {
    const auto shape = channel_shape(input);
    auto scale = invstd * weight;
    auto shift = bias - mean * scale;
    auto output = torch::addcmul(shift.view(shape), as_float(input), scale.view(shape)).to(input.scalar_type());
    ctx->save_for_backward({input, weight, mean, invstd});
    ctx->saved_data["count"] = count;
    ctx->saved_data["all_reduce"] = c10::IValue::make_capsule(std::move(all_reduce));
    return output;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& input = saved[0];
    const auto& weight = saved[1];
    const auto& mean = saved[2];
    const auto& invstd = saved[3];
    const auto count = ctx->saved_data["count"].toDouble();
    const auto capsule = c10::static_intrusive_pointer_cast<AllReduceCapsule>(ctx->saved_data["all_reduce"].toCapsule());
    const auto shape = channel_shape(input);
    const auto dims = reduce_dims(input);
    const auto dy = as_float(grad_outputs[0]);
    const auto x_hat = (as_float(input) - mean.view(shape)) * invstd.view(shape);
    const auto channels = input.size(1);
    auto sums = torch::cat({dy.sum(dims), (dy * x_hat).sum(dims)});
    const auto grad_bias = sums.narrow(0, 0, channels).clone();
    const auto grad_weight = sums.narrow(0, channels, channels).clone();
    if (capsule->fn && *capsule->fn) {
      std::vector<torch::Tensor> one{sums};
      (*capsule->fn)(one);
      sums = one[0];
    }
    const auto mean_dy = (sums.narrow(0, 0, channels) / count).view(shape);
    const auto mean_dy_x_hat = (sums.narrow(0, channels, channels) / count).view(shape);
    auto grad_input = ((dy - mean_dy - x_hat * mean_dy_x_hat) * (invstd * weight).view(shape)).to(input.scalar_type());
    return {grad_input, grad_weight, grad_bias, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// y = the sum of x over the ranks; its gradient is the sum of y's gradients over the ranks.
struct AllReduceSumFunction : torch::autograd::Function<AllReduceSumFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               c10::intrusive_ptr<AllReduceCapsule> all_reduce) {
    std::vector<torch::Tensor> one{x.clone()};
    (*all_reduce->fn)(one);
    ctx->saved_data["all_reduce"] = c10::IValue::make_capsule(std::move(all_reduce));
    return one[0];
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto capsule = c10::static_intrusive_pointer_cast<AllReduceCapsule>(ctx->saved_data["all_reduce"].toCapsule());
    std::vector<torch::Tensor> one{grad_outputs[0].clone()};
    (*capsule->fn)(one);
    return {one[0], torch::Tensor()};
  }
};

}  // namespace

GlobalMoments global_moments(const torch::Tensor& x, const std::shared_ptr<const AllReduceSum>& all_reduce) {
  TORCH_CHECK(x.dim() == 2, "global_moments: expected x [N, C], got ", x.sizes());
  TORCH_CHECK(all_reduce && *all_reduce, "global_moments: no collective");
  const int64_t c = x.size(1);
  // In double: the variance comes from the sum of squares (one collective, no second pass).
  const auto xd = x.to(torch::kDouble);
  auto packed = torch::cat({xd.sum(0), (xd * xd).sum(0),
                            torch::full({1}, static_cast<double>(x.size(0)), xd.options())});
  auto total = AllReduceSumFunction::apply(packed, c10::make_intrusive<AllReduceCapsule>(all_reduce));
  GlobalMoments out;
  out.count = total[2 * c].item<double>();
  const auto n = std::max(out.count, 1.0);
  const auto mean = total.narrow(0, 0, c) / n;
  out.var = (total.narrow(0, c, c) / n - mean * mean).clamp_min(0).to(x.scalar_type());
  out.mean = mean.to(x.scalar_type());
  return out;
}

torch::Tensor sync_batch_norm(const torch::Tensor& input, const torch::Tensor& weight, const torch::Tensor& bias,
                              const torch::Tensor& running_mean, const torch::Tensor& running_var,
                              const torch::Tensor& num_batches_tracked, const torch::nn::BatchNormOptions& options,
                              const std::shared_ptr<const AllReduceSum>& all_reduce) {
  TORCH_CHECK(input.dim() >= 2 && input.size(1) == options.num_features(), "SyncBatchNorm: expected input [N, ",
              options.num_features(), ", ...], got ", input.sizes());
  const int64_t channels = input.size(1);
  const auto local_count = static_cast<double>(input.numel() / std::max<int64_t>(channels, 1));
  const auto stats_options = torch::TensorOptions().dtype(torch::kDouble).device(input.device());
  torch::Tensor sums;
  {
    torch::NoGradGuard no_grad;
    torch::Tensor mean = torch::zeros({channels}, stats_options), var = torch::zeros({channels}, stats_options);
    if (local_count > 0) {
      auto var_mean = torch::var_mean(as_float(input), reduce_dims(input), /*unbiased=*/false);
      var = std::get<0>(var_mean).to(torch::kDouble);
      mean = std::get<1>(var_mean).to(torch::kDouble);
    }
    // [sum, sum of squares, count] per channel, in double: in float the sums of squares
    // lose the variance to cancellation when |mean| >> std.
    sums = torch::cat({mean * local_count, (var + mean * mean) * local_count,
                       torch::full({1}, local_count, stats_options)});
    if (all_reduce && *all_reduce) {
      std::vector<torch::Tensor> one{sums};
      (*all_reduce)(one);
      sums = one[0];
    }
  }
  const double count = sums[2 * channels].item<double>();
  TORCH_CHECK(count > 1, "SyncBatchNorm: needs more than one value per channel over all ranks in training, got ",
              count);
  const auto mean = sums.narrow(0, 0, channels) / count;
  const auto var = (sums.narrow(0, channels, channels) / count - mean * mean).clamp_min(0);
  if (options.track_running_stats()) {
    torch::NoGradGuard no_grad;
    num_batches_tracked.add_(1);
    const double momentum = options.momentum().has_value()
                                ? *options.momentum()
                                : 1.0 / static_cast<double>(num_batches_tracked.item<int64_t>());
    running_mean.mul_(1 - momentum).add_(mean.to(running_mean.scalar_type()), momentum);
    running_var.mul_(1 - momentum).add_((var * (count / (count - 1))).to(running_var.scalar_type()), momentum);
  }
  const auto float_type = input.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const auto float_options = input.options().dtype(float_type);
  return SyncBatchNormFunction::apply(input, weight.defined() ? weight : torch::ones({channels}, float_options),
                                      bias.defined() ? bias : torch::zeros({channels}, float_options),
                                      mean.to(float_type), torch::rsqrt(var + options.eps()).to(float_type), count,
                                      c10::make_intrusive<AllReduceCapsule>(all_reduce));
}

}  // namespace splitshare::nn
