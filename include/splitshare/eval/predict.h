#pragma once

#include <splitshare/data/dataset.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/nn/inference.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace splitshare::eval {

/// Reads a JPEG or PNG file (grey or colour, any size) and applies a checkpoint's
/// preprocessing: decoded to `preprocess.channels` channels; with resize/crop set, the
/// evaluation transform (shorter side resized, centre crop); with neither, the whole
/// image resized to size x size (antialiased bilinear, as data::resample); then
/// normalised with mean/std. Returns float [C, H, W]. Throws naming `path`.
torch::Tensor load_image(const std::string& path, const data::Preprocess& preprocess);

/// How predict runs.
struct PredictOptions {
  /// Classes listed per image (capped at the number of classes).
  TORCH_ARG(int64_t, topk) = 5;
  /// Images decoded and classified together.
  TORCH_ARG(int64_t, batch_size) = 16;
  /// Keep each preprocessed image in Prediction::input (for checks against other tools).
  TORCH_ARG(bool, keep_inputs) = false;
  TORCH_ARG(torch::Device, device) = torch::kCPU;
  /// The backbone's arithmetic (nn::InferenceOptions::dtype): torch::kFloat or torch::kBFloat16.
  TORCH_ARG(torch::Dtype, dtype) = torch::kFloat;
};

/// One class of a top-k list.
struct ClassScore {
  int64_t index = 0;
  /// The class name from the checkpoint metadata, or the index as text when it has none.
  std::string label;
  /// Softmax of the combined logits.
  double probability = 0;
};

/// The model's answer for one image.
struct Prediction {
  std::string path;
  /// Most probable classes first.
  std::vector<ClassScore> topk;
  /// Combined logits, float [K].
  torch::Tensor logits;
  /// Per sub-classifier logits, S x float [K] (one entry for a linear head).
  std::vector<torch::Tensor> head_logits;
  /// The preprocessed image, float [C, H, W] (only with PredictOptions::keep_inputs).
  torch::Tensor input;
};

/// Classifies preprocessed images [N, C, H, W] (model in evaluation mode, no gradients);
/// `classes` names the labels (may be empty). Paths are left empty.
std::vector<Prediction> predict(nn::ClassifierImpl& model, const torch::Tensor& images,
                                const std::vector<std::string>& classes, const PredictOptions& options = {});

/// The same with a model already folded for inference (predict_files folds once for all batches).
std::vector<Prediction> predict(const nn::InferenceModel& model, const torch::Tensor& images,
                                const std::vector<std::string>& classes, const PredictOptions& options = {});

/// load_image + predict for image files, batch by batch, in the order given.
std::vector<Prediction> predict_files(nn::ClassifierImpl& model, const data::Preprocess& preprocess,
                                      const std::vector<std::string>& classes, const std::vector<std::string>& paths,
                                      const PredictOptions& options = {});

/// {"path", "topk": [{"class", "label", "prob"}], "logits": [K], "head_logits": [[K] per split]}.
nlohmann::json to_json(const Prediction& prediction);

}  // namespace splitshare::eval
