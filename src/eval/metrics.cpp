#include <splitshare/eval/metrics.h>

#include <splitshare/eval/per_class.h>
#include <splitshare/nn/inference.h>

#include <cmath>

namespace splitshare::eval {

double gap_closed(double mean, double chosen, double oracle) {
  return oracle > mean ? (chosen - mean) / (oracle - mean) : 0.0;
}

void Accumulator::add(const nn::HeadOutput& output, const torch::Tensor& labels) {
  const auto logits = output.logits.detach().to(torch::kFloat);
  const auto target = labels.to(logits.device());
  const int64_t n = target.size(0);
  TORCH_CHECK(logits.size(0) == n, "Accumulator: ", logits.size(0), " predictions for ", n, " labels");
  const int64_t k = std::min<int64_t>(5, logits.size(1));
  loss_sum_ += torch::nn::functional::cross_entropy(
                   logits, target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                   .item<double>();
  auto topk = std::get<1>(logits.topk(k, 1));
  auto hits = topk.eq(target.unsqueeze(1));
  top1_ += hits.select(1, 0).sum().item<int64_t>();
  top5_ += hits.any(1).sum().item<int64_t>();
  const int64_t classes = logits.size(1);
  auto add_counts = [&](torch::Tensor& sum, const torch::Tensor& predictions) {
    auto counts = confusion_matrix(target, predictions, classes);
    if (sum.defined()) {
      sum.add_(counts);
    } else {
      sum = counts;
    }
  };
  add_counts(confusion_, topk.select(1, 0));
  if (samples_ == 0) gated_ = output.ungated.defined();
  TORCH_CHECK(gated_ == output.ungated.defined(), "Accumulator: gated and ungated outputs mixed");
  if (gated_) ungated_ += output.ungated.detach().argmax(1).eq(target).sum().item<int64_t>();

  const auto& heads = output.head_logits;
  if (head_correct_.empty()) {
    head_correct_.assign(heads.size(), 0);
    head_confusion_.assign(heads.size(), torch::Tensor());
  }
  TORCH_CHECK(head_correct_.size() == heads.size(), "Accumulator: head count changed between batches");
  auto any_right = torch::zeros({n}, torch::TensorOptions().dtype(torch::kBool).device(logits.device()));
  std::vector<torch::Tensor> head_probs;
  for (size_t h = 0; h < heads.size(); ++h) {
    auto head = heads[h].detach().to(torch::kFloat);
    auto predictions = head.argmax(1);
    auto right = predictions.eq(target);
    head_correct_[h] += right.sum().item<int64_t>();
    add_counts(head_confusion_[h], predictions);
    any_right = any_right.logical_or(right);
    head_probs.push_back(head.softmax(1));
  }
  oracle_ += any_right.sum().item<int64_t>();
  auto probs = torch::stack(head_probs);                 // [H, N, K]
  auto confidence = std::get<0>(probs.max(2));           // [H, N]
  auto best_head = confidence.argmax(0);                 // [N]
  auto per_head_pred = probs.argmax(2);                  // [H, N]
  auto chosen = per_head_pred.gather(0, best_head.unsqueeze(0)).squeeze(0);
  most_confident_ += chosen.eq(target).sum().item<int64_t>();
  auto weighted = (probs * confidence.unsqueeze(2)).sum(0);
  weighted_ += weighted.argmax(1).eq(target).sum().item<int64_t>();

  if (keep_) {
    probabilities_.push_back(logits.softmax(1).cpu());
    labels_.push_back(target.cpu());
  }
  samples_ += n;
}

EvalResult Accumulator::result() const {
  EvalResult r;
  r.samples = samples_;
  if (samples_ == 0) return r;
  const double n = static_cast<double>(samples_);
  r.top1 = top1_ / n;
  r.top5 = top5_ / n;
  r.loss = loss_sum_ / n;
  r.oracle = oracle_ / n;
  r.most_confident = most_confident_ / n;
  r.confidence_weighted = weighted_ / n;
  r.gated = gated_;
  r.ungated_top1 = ungated_ / n;
  for (auto c : head_correct_) r.head_top1.push_back(c / n);
  if (confusion_.defined()) r.confusion = confusion_.cpu();
  for (const auto& c : head_confusion_) r.head_confusion.push_back(c.cpu());
  if (keep_) {
    r.probabilities = torch::cat(probabilities_);
    r.labels = torch::cat(labels_);
  }
  return r;
}

void Accumulator::reduce(const Reducer& sum) {
  if (!sum) return;
  std::vector<double> counts = {static_cast<double>(samples_), loss_sum_, static_cast<double>(top1_),
                                static_cast<double>(top5_), static_cast<double>(oracle_),
                                static_cast<double>(most_confident_), static_cast<double>(weighted_),
                                static_cast<double>(ungated_)};
  for (auto c : head_correct_) counts.push_back(static_cast<double>(c));
  std::vector<torch::Tensor> packed{torch::tensor(counts, torch::kDouble)};
  // The confusion matrices travel as they are (int64), so large counts stay exact.
  if (confusion_.defined()) {
    packed.push_back(confusion_);
    for (const auto& c : head_confusion_) packed.push_back(c);
  }
  sum(packed);
  if (confusion_.defined()) {
    confusion_ = packed[1];
    for (size_t h = 0; h < head_confusion_.size(); ++h) head_confusion_[h] = packed[2 + h];
  }
  auto* v = packed[0].data_ptr<double>();
  samples_ = std::llround(v[0]);
  loss_sum_ = v[1];
  top1_ = std::llround(v[2]);
  top5_ = std::llround(v[3]);
  oracle_ = std::llround(v[4]);
  most_confident_ = std::llround(v[5]);
  weighted_ = std::llround(v[6]);
  ungated_ = std::llround(v[7]);
  for (size_t h = 0; h < head_correct_.size(); ++h) head_correct_[h] = std::llround(v[8 + h]);
}

nn::HeadOutput flip_mean_forward(const nn::Predictor& model, const torch::Tensor& images) {
  auto output = model.forward(images);
  const auto mirrored = model.forward(images.flip(3));
  output.logits = (output.logits + mirrored.logits) / 2;
  if (output.ungated.defined()) output.ungated = (output.ungated + mirrored.ungated) / 2;
  for (size_t h = 0; h < output.head_logits.size(); ++h) {
    output.head_logits[h] = (output.head_logits[h] + mirrored.head_logits[h]) / 2;
  }
  return output;
}

EvalResult evaluate(nn::ClassifierImpl& model, data::BatchStream& stream, bool keep_probabilities,
                    torch::Device device, const Reducer& reduce, torch::Dtype dtype, bool flip_tta) {
  // Folded from the current weights on every call, so the trainer's validation sees each epoch's.
  return evaluate(nn::InferenceModel(model, nn::InferenceOptions().dtype(dtype)), stream, keep_probabilities, device,
                  reduce, flip_tta);
}

EvalResult evaluate(const nn::Predictor& model, data::BatchStream& stream, bool keep_probabilities,
                    torch::Device device, const Reducer& reduce, bool flip_tta) {
  Accumulator acc;
  acc.keep_probabilities(keep_probabilities);
  {
    torch::InferenceMode guard;
    stream.reset(0);
    while (auto batch = stream.next()) {
      const auto images = batch->images.to(device);
      acc.add(flip_tta ? flip_mean_forward(model, images) : model.forward(images), batch->labels.to(device));
    }
  }
  acc.reduce(reduce);
  return acc.result();
}

double ensemble_top1(const std::vector<EvalResult>& members) {
  TORCH_CHECK(!members.empty(), "ensemble: no members");
  torch::Tensor sum;
  for (const auto& m : members) {
    TORCH_CHECK(m.probabilities.defined(), "ensemble: member evaluated without keep_probabilities");
    TORCH_CHECK(m.labels.equal(members[0].labels), "ensemble: members were evaluated on different samples");
    sum = sum.defined() ? sum + m.probabilities : m.probabilities.clone();
  }
  return sum.argmax(1).eq(members[0].labels).to(torch::kDouble).mean().item<double>();
}

nlohmann::json to_json(const EvalResult& r) {
  nlohmann::json heads = nlohmann::json::array();
  for (auto t : r.head_top1) heads.push_back({{"top1", t}});
  nlohmann::json selection{{"mean", r.mean_top1()},
                            {"most_confident", r.most_confident},
                            {"confidence_weighted", r.confidence_weighted},
                            {"oracle", r.oracle}};
  if (r.gated) {
    selection["gate"] = r.top1;
    selection["gap_closed"] = gap_closed(r.ungated_top1, r.top1, r.oracle);
  }
  return {{"top1", r.top1},       {"top5", r.top5},     {"loss", r.loss},
          {"samples", r.samples}, {"heads", heads},     {"oracle", r.oracle},
          {"selection", selection}};
}

EvalResult from_json(const nlohmann::json& j) {
  EvalResult r;
  r.top1 = j.at("top1").get<double>();
  r.top5 = j.at("top5").get<double>();
  r.loss = j.at("loss").get<double>();
  r.samples = j.at("samples").get<int64_t>();
  for (const auto& h : j.at("heads")) r.head_top1.push_back(h.at("top1").get<double>());
  r.oracle = j.at("oracle").get<double>();
  r.most_confident = j.at("selection").at("most_confident").get<double>();
  r.confidence_weighted = j.at("selection").at("confidence_weighted").get<double>();
  r.gated = j.at("selection").contains("gate");
  if (r.gated) r.ungated_top1 = j.at("selection").at("mean").get<double>();
  return r;
}

}  // namespace splitshare::eval
