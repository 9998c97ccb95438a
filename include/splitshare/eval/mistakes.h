#pragma once

#include <splitshare/data/loader.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/nn/predictor.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace splitshare::eval {

/// One wrongly classified sample.
struct Mistake {
  /// The sample's dataset index (data::Batch::indices), or its position in the stream
  /// when the stream gives no indices.
  int64_t index = 0;
  int64_t label = 0;
  /// The combined output's top class.
  int64_t predicted = 0;
  /// Softmax probability of `predicted` (combined logits).
  double confidence = 0;
  /// The preprocessed (normalised) image, float [C, H, W] on the CPU.
  torch::Tensor image;
};

/// The `count` mistakes the model makes most confidently over one epoch of `stream`
/// (reset to epoch 0), most confident first (ties: lower index first); fewer when the
/// model makes fewer. Runs as evaluate does (folded nn::InferenceModel, `dtype`
/// backbone), keeping only `count` images at a time.
std::vector<Mistake> most_confident_mistakes(nn::ClassifierImpl& model, data::BatchStream& stream, int64_t count,
                                             torch::Device device = torch::kCPU, torch::Dtype dtype = torch::kFloat);
/// The same through a model already frozen for inference (a checkpoint's make_predictor).
std::vector<Mistake> most_confident_mistakes(const nn::Predictor& model, data::BatchStream& stream, int64_t count,
                                             torch::Device device = torch::kCPU);

/// [{"index", "true", "predicted", "true_index", "predicted_index", "confidence"}...];
/// `classes` names the labels (the index as text where it has no name).
nlohmann::json to_json(const std::vector<Mistake>& mistakes, const std::vector<std::string>& classes);

}  // namespace splitshare::eval
