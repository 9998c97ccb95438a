#include <splitshare/explain/gradcam.h>

#include <cmath>
#include <limits>

namespace splitshare::explain {
namespace {

constexpr double kCamPlusPlusEps = 1e-6;

void check_pair(const torch::Tensor& activations, const torch::Tensor& gradients, const char* what) {
  TORCH_CHECK(activations.dim() == 4, what, ": expected activations [N, C, h, w], got ", activations.sizes());
  TORCH_CHECK(gradients.sizes() == activations.sizes(), what, ": gradients ", gradients.sizes(),
              " do not match activations ", activations.sizes());
}

// The gradient of `score` w.r.t. `features`; zeros when the score does not depend on them.
torch::Tensor gradient_of(const torch::Tensor& score, const torch::Tensor& features, bool retain_graph) {
  auto grads = torch::autograd::grad({score}, {features}, /*grad_outputs=*/{}, retain_graph,
                                     /*create_graph=*/false, /*allow_unused=*/true);
  return grads[0].defined() ? grads[0] : torch::zeros_like(features);
}

torch::Tensor resolve_targets(const torch::Tensor& targets, const torch::Tensor& logits) {
  const int64_t n = logits.size(0), k = logits.size(1);
  if (!targets.defined()) return logits.detach().argmax(1);
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == n, "explain_heads: expected targets [", n, "], got ",
              targets.sizes());
  auto t = targets.to(torch::kLong).to(logits.device());
  if (n > 0) {
    const auto lo = t.min().item<int64_t>(), hi = t.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < k, "explain_heads: target classes must be in [0, ", k, "), got ", lo, "..", hi);
  }
  return t;
}

}  // namespace

std::string to_string(CamMethod method) {
  switch (method) {
    case CamMethod::kGradCam:
      return "gradcam";
    case CamMethod::kGradCamPlusPlus:
      return "gradcampp";
  }
  return "?";
}

CamMethod parse_cam_method(const std::string& text) {
  if (text == "gradcam") return CamMethod::kGradCam;
  TORCH_CHECK(text == "gradcampp" || text == "gradcam++", "unknown Grad-CAM method '", text,
              "': expected gradcam or gradcampp");
  return CamMethod::kGradCamPlusPlus;
}

torch::Tensor cam_weights(const torch::Tensor& activations, const torch::Tensor& gradients, CamMethod method) {
  check_pair(activations, gradients, "cam_weights");
  const auto a = activations.to(torch::kFloat32);
  const auto g = gradients.to(torch::kFloat32);
  if (method == CamMethod::kGradCam) return g.mean({2, 3});
  const auto g2 = g * g;
  const auto g3 = g2 * g;
  const auto sum_a = a.sum({2, 3}, /*keepdim=*/true);
  auto alpha = g2 / (2.0 * g2 + sum_a * g3 + kCamPlusPlusEps);
  alpha = torch::where(g != 0, alpha, torch::zeros_like(alpha));
  return (alpha * torch::relu(g)).sum({2, 3});
}

torch::Tensor class_activation_map(const torch::Tensor& activations, const torch::Tensor& gradients,
                                   CamMethod method) {
  const auto w = cam_weights(activations, gradients, method);
  const auto a = activations.to(torch::kFloat32);
  return torch::relu((w.unsqueeze(-1).unsqueeze(-1) * a).sum(1));
}

std::vector<ChannelRange> head_channel_ranges(const nn::HeadOptions& head, int64_t feature_dim) {
  std::vector<ChannelRange> ranges;
  switch (head.kind()) {
    case nn::HeadKind::kLinear:
      break;
    case nn::HeadKind::kSSM: {
      TORCH_CHECK(head.splits() >= 1 && feature_dim % head.splits() == 0, "head_channel_ranges: ", feature_dim,
                  " channels cannot be cut into ", head.splits(), " splits");
      const int64_t width = feature_dim / head.splits();
      for (int64_t j = 0; j < head.splits(); ++j) ranges.push_back({j * width, (j + 1) * width});
      break;
    }
    case nn::HeadKind::kKFC:
      for (int64_t j = 0; j < head.k(); ++j) ranges.push_back({0, feature_dim});
      break;
  }
  return ranges;
}

HeadCams explain_heads(nn::ClassifierImpl& model, const torch::Tensor& images, const torch::Tensor& targets,
                       CamMethod method) {
  TORCH_CHECK(images.dim() == 4, "explain_heads: expected images [N, C, H, W], got ", images.sizes());
  const bool was_training = model.is_training();
  model.eval();
  torch::Tensor features;
  {
    torch::NoGradGuard no_grad;
    features = model.forward_features(images);
  }
  torch::AutoGradMode enable_grad(true);
  features = features.detach().contiguous().requires_grad_(true);
  const auto output = model.forward_head(features);

  HeadCams cams;
  cams.targets = resolve_targets(targets, output.logits);
  cams.probabilities = torch::softmax(output.logits.detach().to(torch::kFloat32), 1);
  for (const auto& logits : output.head_logits) {
    cams.head_probabilities.push_back(torch::softmax(logits.detach().to(torch::kFloat32), 1));
  }
  cams.head_channels = head_channel_ranges(model.options.head(), features.size(1));
  TORCH_CHECK(cams.head_channels.empty() || cams.head_channels.size() == output.head_logits.size(),
              "explain_heads: the head returned ", output.head_logits.size(), " sub-classifier outputs but ",
              cams.head_channels.size(), " were expected");
  // Samples are independent in evaluation mode, so the gradient of the summed target
  // scores gives every sample its own gradient in one backward pass.
  const auto index = cams.targets.view({-1, 1});
  auto score = [&](const torch::Tensor& logits) { return logits.gather(1, index).sum(); };
  const auto activations = features.detach();
  const bool more = !cams.head_channels.empty();
  cams.whole = class_activation_map(activations, gradient_of(score(output.logits), features, more), method);
  for (size_t j = 0; j < cams.head_channels.size(); ++j) {
    const auto [begin, end] = cams.head_channels[j];
    const auto g = gradient_of(score(output.head_logits[j]), features, j + 1 < cams.head_channels.size());
    cams.heads.push_back(
        class_activation_map(activations.narrow(1, begin, end - begin), g.narrow(1, begin, end - begin), method));
  }
  if (was_training) model.train();
  return cams;
}

torch::Tensor upsample_maps(const torch::Tensor& maps, int64_t height, int64_t width) {
  TORCH_CHECK(maps.dim() == 3, "upsample_maps: expected maps [N, h, w], got ", maps.sizes());
  TORCH_CHECK(height >= 1 && width >= 1, "upsample_maps: bad output size ", height, "x", width);
  return torch::nn::functional::interpolate(
             maps.to(torch::kFloat32).unsqueeze(1),
             torch::nn::functional::InterpolateFuncOptions()
                 .size(std::vector<int64_t>{height, width})
                 .mode(torch::kBilinear)
                 .align_corners(false))
      .squeeze(1);
}

torch::Tensor normalize_maps(const torch::Tensor& maps) {
  TORCH_CHECK(maps.dim() == 3, "normalize_maps: expected maps [N, H, W], got ", maps.sizes());
  const auto flat = maps.to(torch::kFloat32).flatten(1);
  const auto lo = std::get<0>(flat.min(1, true));
  const auto shifted = flat - lo;
  const auto hi = std::get<0>(shifted.max(1, true));
  const auto scaled = torch::where(hi > 0, shifted / hi.clamp_min(1e-30), torch::zeros_like(shifted));
  return scaled.view(maps.sizes());
}

MapStats map_stats(const torch::Tensor& map, int64_t input_height, int64_t input_width) {
  TORCH_CHECK(map.dim() == 2 && map.numel() > 0, "map_stats: expected a map [h, w], got ", map.sizes());
  MapStats s;
  const auto raw = map.to(torch::kFloat64).to(torch::kCPU);
  s.map_height = raw.size(0);
  s.map_width = raw.size(1);
  const int64_t cell = raw.flatten().argmax().item<int64_t>();
  s.peak_row = cell / s.map_width;
  s.peak_col = cell % s.map_width;

  const auto up = upsample_maps(raw.unsqueeze(0), input_height, input_width)[0].to(torch::kFloat64).flatten();
  const int64_t pixel = up.argmax().item<int64_t>();
  s.peak_y = pixel / input_width;
  s.peak_x = pixel % input_width;
  s.peak = up[pixel].item<double>();
  s.mean = up.mean().item<double>();
  const auto mass = up.clamp_min(0);
  const double total = mass.sum().item<double>();
  const auto top = static_cast<int64_t>(std::ceil(0.2 * static_cast<double>(mass.numel()) - 1e-9));
  s.top20_energy = total > 0 ? std::get<0>(mass.topk(std::max<int64_t>(top, 1))).sum().item<double>() / total
                             : std::numeric_limits<double>::quiet_NaN();
  return s;
}

nlohmann::json to_json(const MapStats& s) {
  return {{"map_size", {s.map_height, s.map_width}},
          {"peak_cell", {s.peak_row, s.peak_col}},
          {"peak_pixel", {s.peak_y, s.peak_x}},
          {"peak", s.peak},
          {"mean", s.mean},
          {"top20_energy", std::isnan(s.top20_energy) ? nlohmann::json(nullptr) : nlohmann::json(s.top20_energy)}};
}

}  // namespace splitshare::explain
