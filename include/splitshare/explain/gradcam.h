#pragma once

#include <splitshare/nn/classifier.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace splitshare::explain {

/// How the channel weights of a class activation map are computed from the gradient
/// g = dY/dA of a class score Y with respect to the feature map A [C, h, w].
enum class CamMethod {
  /// Grad-CAM (Selvaraju et al. 2017): w_k = mean_ij g_kij.
  kGradCam,
  /// Grad-CAM++ (Chattopadhay et al. 2018) in its closed form for an exponential score:
  /// w_k = sum_ij a_kij ReLU(g_kij), a_kij = g_kij^2 / (2 g_kij^2 + (sum_ab A_kab) g_kij^3)
  /// (a = 0 where g = 0), as pytorch-grad-cam computes it.
  kGradCamPlusPlus,
};

/// "gradcam", "gradcampp".
std::string to_string(CamMethod method);
/// Inverse of to_string (also accepts "gradcam++"); throws naming the text.
CamMethod parse_cam_method(const std::string& text);

/// Channel weights: activations and gradients [N, C, h, w] -> w [N, C].
torch::Tensor cam_weights(const torch::Tensor& activations, const torch::Tensor& gradients, CamMethod method);

/// The class activation map ReLU(sum_k w_k A_k): activations and gradients
/// [N, C, h, w] -> [N, h, w] (float32, unnormalised).
torch::Tensor class_activation_map(const torch::Tensor& activations, const torch::Tensor& gradients,
                                   CamMethod method);

/// A half-open range [begin, end) of channels of the last feature map.
struct ChannelRange {
  int64_t begin = 0;
  int64_t end = 0;
};

/// The channels each head's map is restricted to, for a model with `feature_dim`
/// channels: SSM sub-classifier j gets its own split [j*C/S, (j+1)*C/S) (paper
/// Section 5: "Channel 512~1023" w.r.t. the second sub-classifier), each of k
/// parallel FCs gets all C channels, and a linear head has no per-head map (empty).
std::vector<ChannelRange> head_channel_ranges(const nn::HeadOptions& head, int64_t feature_dim);

/// The maps explain_heads computes for a batch of images.
struct HeadCams {
  /// The class explained for each image, int64 [N].
  torch::Tensor targets;
  /// Softmax of the combined logits, float [N, K].
  torch::Tensor probabilities;
  /// Softmax of each head's logits, one float [N, K] per head (one entry for a linear head).
  std::vector<torch::Tensor> head_probabilities;
  /// The whole model: the combined logit of the target w.r.t. all C channels, [N, h, w].
  torch::Tensor whole;
  /// Head j: its own logit of the target w.r.t. channels head_channels[j], each [N, h, w].
  std::vector<torch::Tensor> heads;
  std::vector<ChannelRange> head_channels;
};

/// Grad-CAM (or Grad-CAM++) of the whole model and of every head.
/// images: float [N, C_in, H, W], normalised as the model expects. targets: int64 [N],
/// the classes to explain, or an undefined tensor for each image's predicted class
/// (argmax of the combined logits). The backbone runs once without autograd; only the
/// head is differentiated, with respect to the feature map (libtorch modules have no
/// hooks, hence forward_features / forward_head). Runs in evaluation mode (the
/// model's mode is restored) and leaves no gradients on the parameters.
HeadCams explain_heads(nn::ClassifierImpl& model, const torch::Tensor& images, const torch::Tensor& targets = {},
                       CamMethod method = CamMethod::kGradCam);

/// Bilinear upsampling (align_corners = false) of maps [N, h, w] -> [N, height, width].
torch::Tensor upsample_maps(const torch::Tensor& maps, int64_t height, int64_t width);

/// Min-max scaling of each map of [N, H, W] to [0, 1] (pytorch-grad-cam's
/// scale_cam_image); a constant map becomes all zeros.
torch::Tensor normalize_maps(const torch::Tensor& maps);

/// Statistics of one raw (unnormalised) map, measured on the map bilinearly
/// upsampled to the input size.
struct MapStats {
  /// Map size in feature cells, and the cell holding the maximum.
  int64_t map_height = 0, map_width = 0;
  int64_t peak_row = 0, peak_col = 0;
  /// The maximum's position in input pixels (row y, column x) and its value.
  int64_t peak_y = 0, peak_x = 0;
  double peak = 0;
  /// Mean of the map over the input pixels.
  double mean = 0;
  /// Share of the map's total mass held by its top 20% of input pixels
  /// (ceil(0.2 * H * W) pixels): 0.2 for a flat map, 1 for a map on fewer pixels; NaN
  /// for an all-zero map.
  double top20_energy = 0;
};

/// Statistics of a raw map [h, w] for an input of input_height x input_width pixels.
MapStats map_stats(const torch::Tensor& map, int64_t input_height, int64_t input_width);

/// {"map_size": [h, w], "peak_cell": [row, col], "peak_pixel": [y, x], "peak", "mean",
/// "top20_energy"} (null when NaN).
nlohmann::json to_json(const MapStats& stats);

}  // namespace splitshare::explain
