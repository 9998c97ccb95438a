#include <splitshare/eval/predict.h>

#include <splitshare/eval/metrics.h>

#include <splitshare/image/decode.h>
#include <splitshare/data/transforms.h>

#include <algorithm>
#include "../data/resample.h"

namespace splitshare::eval {
namespace {

// The whole image resized to size x size (no crop): what small-image models were trained on.
torch::Tensor resize_whole(const torch::Tensor& image, int64_t size, const data::Preprocess& preprocess) {
  data::ResampleSpec spec;
  spec.x = {0.0, static_cast<double>(image.size(2)), size, 0, size};
  spec.y = {0.0, static_cast<double>(image.size(1)), size, 0, size};
  auto resampled = data::resample(image, spec);
  const auto map = data::normalization(preprocess.mean, preprocess.std);
  for (int64_t c = 0; c < resampled.size(0); ++c) resampled[c].mul_(map.scale[c]).add_(map.bias[c]);
  return resampled;
}

std::vector<double> to_doubles(const torch::Tensor& values) {
  auto contiguous = values.to(torch::kDouble).contiguous();
  const double* data = contiguous.data_ptr<double>();
  return std::vector<double>(data, data + contiguous.numel());
}

}  // namespace

torch::Tensor load_image(const std::string& path, const data::Preprocess& preprocess) {
  TORCH_CHECK(preprocess.channels == 1 || preprocess.channels == 3, path, ": the model takes ",
              preprocess.channels, "-channel images; only 1 (grey) and 3 (RGB) can be decoded");
  TORCH_CHECK(static_cast<int64_t>(preprocess.mean.size()) == preprocess.channels &&
                  static_cast<int64_t>(preprocess.std.size()) == preprocess.channels,
              "preprocessing has ", preprocess.mean.size(), " mean and ", preprocess.std.size(), " std values for ",
              preprocess.channels, " channels");
  auto image = data::decode_image(path, data::DecodeOptions().channels(preprocess.channels));
  if (preprocess.resize || preprocess.crop) {
    const int64_t crop = preprocess.crop.value_or(*preprocess.resize);
    const int64_t resize = preprocess.resize.value_or(crop);
    return data::eval_transform(image, resize, crop, preprocess.mean, preprocess.std, preprocess.resize_mode);
  }
  TORCH_CHECK(preprocess.size && *preprocess.size >= 1, path,
              ": the checkpoint's preprocessing records no resize, crop or size, so the input resolution is "
              "unknown (pass --size N)");
  return resize_whole(image, *preprocess.size, preprocess);
}

std::vector<Prediction> predict(nn::ClassifierImpl& model, const torch::Tensor& images,
                                const std::vector<std::string>& classes, const PredictOptions& options) {
  model.eval();
  return predict(nn::InferenceModel(model, nn::InferenceOptions().dtype(options.dtype())), images, classes, options);
}

std::vector<Prediction> predict(const nn::Predictor& model, const torch::Tensor& images,
                                const std::vector<std::string>& classes, const PredictOptions& options) {
  TORCH_CHECK(images.dim() == 4, "predict: expected images [N, C, H, W], got ", images.sizes());
  TORCH_CHECK(options.topk() >= 1, "predict: topk must be positive, got ", options.topk());
  const auto input = images.to(options.device());
  const auto output = options.flip_tta() ? flip_mean_forward(model, input) : model.forward(input);
  auto logits = output.logits.to(torch::kCPU, torch::kFloat);
  const int64_t k = std::min(options.topk(), logits.size(1));
  auto [top_probabilities, top_indices] = torch::softmax(logits, 1).topk(k, 1);
  std::vector<Prediction> predictions(static_cast<size_t>(images.size(0)));
  for (int64_t i = 0; i < images.size(0); ++i) {
    auto& p = predictions[static_cast<size_t>(i)];
    p.logits = logits[i].clone();
    for (const auto& head : output.head_logits) p.head_logits.push_back(head[i].to(torch::kCPU, torch::kFloat).clone());
    for (int64_t j = 0; j < k; ++j) {
      ClassScore score;
      score.index = top_indices[i][j].item<int64_t>();
      score.probability = top_probabilities[i][j].item<double>();
      score.label = score.index < static_cast<int64_t>(classes.size()) ? classes[static_cast<size_t>(score.index)]
                                                                       : std::to_string(score.index);
      p.topk.push_back(score);
    }
    if (options.keep_inputs()) p.input = images[i].to(torch::kCPU).clone();
  }
  return predictions;
}

std::vector<Prediction> predict_files(nn::ClassifierImpl& model, const data::Preprocess& preprocess,
                                      const std::vector<std::string>& classes, const std::vector<std::string>& paths,
                                      const PredictOptions& options) {
  TORCH_CHECK(options.batch_size() >= 1, "predict: batch_size must be positive, got ", options.batch_size());
  std::vector<Prediction> predictions;
  model.eval();
  const nn::InferenceModel folded(model, nn::InferenceOptions().dtype(options.dtype()));
  const auto batch = static_cast<size_t>(options.batch_size());
  for (size_t start = 0; start < paths.size(); start += batch) {
    const size_t end = std::min(paths.size(), start + batch);
    std::vector<torch::Tensor> images;
    for (size_t i = start; i < end; ++i) images.push_back(load_image(paths[i], preprocess));
    auto part = predict(folded, torch::stack(images), classes, options);
    for (size_t i = 0; i < part.size(); ++i) {
      part[i].path = paths[start + i];
      predictions.push_back(std::move(part[i]));
    }
  }
  return predictions;
}

nlohmann::json to_json(const Prediction& prediction) {
  nlohmann::json topk = nlohmann::json::array();
  for (const auto& score : prediction.topk) {
    topk.push_back({{"class", score.index}, {"label", score.label}, {"prob", score.probability}});
  }
  nlohmann::json heads = nlohmann::json::array();
  for (const auto& head : prediction.head_logits) heads.push_back(to_doubles(head));
  return {{"path", prediction.path}, {"topk", topk}, {"logits", to_doubles(prediction.logits)}, {"head_logits", heads}};
}

}  // namespace splitshare::eval
