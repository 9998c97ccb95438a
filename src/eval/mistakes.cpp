#include <splitshare/eval/mistakes.h>

#include <splitshare/nn/inference.h>

#include <algorithm>

namespace splitshare::eval {
namespace {

bool more_confident(const Mistake& a, const Mistake& b) {
  return a.confidence != b.confidence ? a.confidence > b.confidence : a.index < b.index;
}

// The batch's mistakes that could enter the list: at most `count` of them, most confident first.
std::vector<Mistake> batch_mistakes(const torch::Tensor& logits, const data::Batch& batch, int64_t first,
                                    int64_t count) {
  const auto probabilities = logits.to(torch::kCPU, torch::kFloat).softmax(1);
  const auto [confidence, predicted] = probabilities.max(1);
  const auto labels = batch.labels.to(torch::kCPU, torch::kLong);
  const auto wrong = predicted.ne(labels).nonzero().view(-1);
  const int64_t keep = std::min<int64_t>(count, wrong.size(0));
  const auto order = std::get<1>(confidence.index_select(0, wrong).topk(keep));
  const auto indices = batch.indices.defined() ? batch.indices.to(torch::kCPU, torch::kLong) : torch::Tensor();
  std::vector<Mistake> out;
  for (int64_t k = 0; k < keep; ++k) {
    const int64_t i = wrong[order[k].item<int64_t>()].item<int64_t>();
    out.push_back({indices.defined() ? indices[i].item<int64_t>() : first + i, labels[i].item<int64_t>(),
                   predicted[i].item<int64_t>(), confidence[i].item<double>(),
                   batch.images[i].detach().to(torch::kCPU, torch::kFloat).clone()});
  }
  return out;
}

std::string name_of(const std::vector<std::string>& classes, int64_t index) {
  return index >= 0 && index < static_cast<int64_t>(classes.size()) ? classes[index] : std::to_string(index);
}

}  // namespace

std::vector<Mistake> most_confident_mistakes(nn::ClassifierImpl& model, data::BatchStream& stream, int64_t count,
                                             torch::Device device, torch::Dtype dtype) {
  return most_confident_mistakes(nn::InferenceModel(model, nn::InferenceOptions().dtype(dtype)), stream, count, device);
}

std::vector<Mistake> most_confident_mistakes(const nn::Predictor& model, data::BatchStream& stream, int64_t count,
                                             torch::Device device) {
  TORCH_CHECK(count >= 0, "most_confident_mistakes: count must be >= 0, got ", count);
  std::vector<Mistake> kept;
  if (count == 0) return kept;
  torch::InferenceMode guard;
  stream.reset(0);
  int64_t seen = 0;
  while (auto batch = stream.next()) {
    const auto logits = model.forward(batch->images.to(device)).logits;
    auto candidates = batch_mistakes(logits, *batch, seen, count);
    seen += batch->labels.size(0);
    kept.insert(kept.end(), std::make_move_iterator(candidates.begin()), std::make_move_iterator(candidates.end()));
    std::stable_sort(kept.begin(), kept.end(), more_confident);
    if (static_cast<int64_t>(kept.size()) > count) kept.resize(count);
  }
  return kept;
}

nlohmann::json to_json(const std::vector<Mistake>& mistakes, const std::vector<std::string>& classes) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& m : mistakes) {
    out.push_back({{"index", m.index}, {"true", name_of(classes, m.label)},
                   {"predicted", name_of(classes, m.predicted)}, {"true_index", m.label},
                   {"predicted_index", m.predicted}, {"confidence", m.confidence}});
  }
  return out;
}

}  // namespace splitshare::eval
