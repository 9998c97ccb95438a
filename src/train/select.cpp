#include <splitshare/train/select.h>

#include <splitshare/eval/metrics.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

namespace splitshare::train {

HeadOutputs collect_head_outputs(nn::ClassifierImpl& model, data::BatchStream& stream, const torch::Device& device,
                                 const std::vector<bool>& keep) {
  torch::NoGradGuard no_grad;
  model.eval();
  std::vector<torch::Tensor> features, heads, logits, labels, indices;
  stream.reset(0);
  while (auto batch = stream.next()) {
    auto rows = torch::arange(batch->labels.size(0));
    if (!keep.empty()) {
      std::vector<int64_t> chosen;
      const auto* index = batch->indices.data_ptr<int64_t>();
      for (int64_t i = 0; i < batch->indices.size(0); ++i) {
        TORCH_CHECK(index[i] >= 0 && index[i] < static_cast<int64_t>(keep.size()), "collect_head_outputs: sample ",
                    index[i], " is outside the keep mask of ", keep.size());
        if (keep[static_cast<size_t>(index[i])]) chosen.push_back(i);
      }
      if (chosen.empty()) continue;
      rows = torch::tensor(chosen, torch::kInt64);
    }
    const auto images = data::images_on(*batch, device).index_select(0, rows.to(device));
    const auto map = model.forward_features(images);
    const auto pooled = map.mean({2, 3});
    const auto out = model.forward_head(map);
    features.push_back(pooled.to(torch::kCPU, torch::kFloat));
    heads.push_back(torch::stack(out.head_logits).to(torch::kCPU, torch::kFloat));
    // A model that already has a gate: the heads' own combination, what a new gate replaces.
    logits.push_back((out.ungated.defined() ? out.ungated : out.logits).to(torch::kCPU, torch::kFloat));
    labels.push_back(batch->labels.index_select(0, rows));
    indices.push_back(batch->indices.index_select(0, rows));
  }
  TORCH_CHECK(!labels.empty(), "collect_head_outputs: no samples (empty stream or keep mask)");
  return {torch::cat(features), torch::cat(heads, 1), torch::cat(logits), torch::cat(labels), torch::cat(indices)};
}

std::vector<double> fit_gate(nn::GateImpl& gate, const HeadOutputs& data, const GateTrainOptions& options) {
  TORCH_CHECK(options.epochs() >= 1 && options.batch_size() >= 1 && options.lr() > 0,
              "fit_gate: epochs, batch size and lr must be positive");
  torch::optim::Adam optimizer(gate.parameters(),
                               torch::optim::AdamOptions(options.lr()).weight_decay(options.weight_decay()));
  auto generator = at::make_generator<at::CPUGeneratorImpl>(options.seed());
  const auto n = data.labels.size(0);
  std::vector<double> losses;
  gate.train();
  for (int64_t epoch = 0; epoch < options.epochs(); ++epoch) {
    const auto order = torch::randperm(n, generator, torch::kInt64);
    double total = 0;
    for (int64_t start = 0; start < n; start += options.batch_size()) {
      const auto rows = order.narrow(0, start, std::min(options.batch_size(), n - start));
      const auto logits = gate.forward(data.features.index_select(0, rows), data.head_logits.index_select(1, rows));
      auto loss = torch::nn::functional::cross_entropy(logits, data.labels.index_select(0, rows));
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      total += loss.item<double>() * static_cast<double>(rows.size(0));
    }
    losses.push_back(total / static_cast<double>(n));
  }
  gate.eval();
  return losses;
}

SelectionReport selection_report(nn::GateImpl& gate, const HeadOutputs& data) {
  torch::NoGradGuard no_grad;
  gate.eval();
  // The label-free rules and the oracle as `eval` reports them.
  eval::Accumulator accumulator;
  accumulator.add(nn::HeadOutput{data.logits, data.head_logits.unbind(0)}, data.labels);
  const auto figures = accumulator.result();
  SelectionReport r;
  r.samples = figures.samples;
  r.combined = figures.top1;
  r.most_confident = figures.most_confident;
  r.confidence_weighted = figures.confidence_weighted;
  r.oracle = figures.oracle;
  const auto gated = gate.forward(data.features, data.head_logits).argmax(1);
  r.gate = gated.eq(data.labels).to(torch::kFloat64).mean().item<double>();
  return r;
}

namespace {

HeadOutputs rows_of(const HeadOutputs& all, const torch::Tensor& rows) {
  return {all.features.index_select(0, rows), all.head_logits.index_select(1, rows), all.logits.index_select(0, rows),
          all.labels.index_select(0, rows), all.indices.index_select(0, rows)};
}

}  // namespace

SelectResult select_gate(nn::ClassifierImpl& model, data::DataBundle& data, const SelectOptions& options) {
  auto all = collect_head_outputs(model, *data.train, options.device());
  // Dataset order, so that the hold-out is the one `train --holdout` left out.
  all = rows_of(all, std::get<1>(all.indices.sort()));
  const auto holdout = rows_of(all, data::stratified_holdout(all.labels, options.holdout(), options.holdout_seed()));
  const auto validation = collect_head_outputs(model, *data.val, options.device());
  TORCH_CHECK(all.head_logits.size(0) >= 2, "select: the model has a single head; a gate needs an SSM or k-FC model");
  torch::manual_seed(options.seed());
  SelectResult result;
  result.gate = nn::Gate(nn::GateOptions(all.head_logits.size(0), all.features.size(1), all.head_logits.size(2))
                             .input(options.input())
                             .hidden(options.hidden())
                             .hard(options.hard()));
  auto train_options = options.train();
  train_options.seed(options.seed());
  result.losses = fit_gate(*result.gate, holdout, train_options);
  result.holdout = selection_report(*result.gate, holdout);
  result.validation = selection_report(*result.gate, validation);
  result.holdout_indices = holdout.indices;
  return result;
}

nlohmann::json to_json(const SelectionReport& r) {
  return {{"samples", r.samples},
          {"combined", r.combined},
          {"most_confident", r.most_confident},
          {"confidence_weighted", r.confidence_weighted},
          {"gate", r.gate},
          {"oracle", r.oracle},
          {"gap_closed", r.gap_closed()}};
}

nlohmann::json select_record(const std::string& checkpoint, const SelectOptions& options, const SelectResult& result) {
  return {{"checkpoint", checkpoint},
          {"gate",
           {{"input", nn::to_string(options.input())},
            {"hidden", options.hidden()},
            {"hard", options.hard()},
            {"seed", options.seed()},
            {"epochs", options.train().epochs()},
            {"lr", options.train().lr()}}},
          {"holdout_fraction", options.holdout()},
          {"holdout_seed", options.holdout_seed()},
          {"holdout_samples", result.holdout_indices.size(0)},
          {"model_saw_holdout", options.model_saw_holdout()},
          {"losses", result.losses},
          {"holdout", to_json(result.holdout)},
          {"validation", to_json(result.validation)}};
}

std::string holdout_listing(const data::DataBundle& data, const torch::Tensor& holdout_indices) {
  std::string out;
  const auto indices = holdout_indices.to(torch::kLong).contiguous();
  const auto* index = indices.data_ptr<int64_t>();
  for (int64_t i = 0; i < indices.numel(); ++i) {
    if (data.train_files.empty()) {
      out += std::to_string(index[i]);
    } else {
      TORCH_CHECK(index[i] >= 0 && index[i] < static_cast<int64_t>(data.train_files.size()),
                  "holdout_listing: index ", index[i], " outside the ", data.train_files.size(), " training files");
      out += data.train_files[static_cast<size_t>(index[i])];
    }
    out += "\n";
  }
  return out;
}

void save_gated_checkpoint(nn::ClassifierImpl& model, CheckpointMetadata metadata, const nn::Gate& gate,
                           const nlohmann::json& record, const std::string& path) {
  model.set_gate(gate);
  metadata.model = model.options;
  metadata.extra["select"] = record;
  save_checkpoint(model, metadata, path);
}

}  // namespace splitshare::train
