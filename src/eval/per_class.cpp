#include <splitshare/eval/per_class.h>

#include <algorithm>

namespace splitshare::eval {
namespace {

using nlohmann::json;

std::string class_name(const std::vector<std::string>& classes, int64_t index) {
  return index < static_cast<int64_t>(classes.size()) ? classes[index] : std::to_string(index);
}

double ratio(double numerator, double denominator) { return denominator > 0 ? numerator / denominator : 0.0; }

torch::Tensor cpu_counts(const torch::Tensor& confusion) {
  TORCH_CHECK(confusion.defined() && confusion.dim() == 2 && confusion.size(0) == confusion.size(1),
              "per-class metrics: expected a square confusion matrix [K, K], got ",
              confusion.defined() ? confusion.sizes() : torch::IntArrayRef{});
  return confusion.to(torch::kCPU, torch::kLong).contiguous();
}

json scores_json(const ClassScores& s) {
  return {{"precision", s.precision}, {"recall", s.recall}, {"f1", s.f1}, {"support", s.support}};
}

ClassScores scores_from_json(const json& j, std::string name, int64_t index) {
  ClassScores s;
  s.name = std::move(name);
  s.index = index;
  s.precision = j.at("precision").get<double>();
  s.recall = j.at("recall").get<double>();
  s.f1 = j.at("f1").get<double>();
  s.support = j.at("support").get<int64_t>();
  return s;
}

json confusion_json(const PerClassReport& r) {
  json matrix = json::array();
  const auto counts = cpu_counts(r.confusion);
  const auto* c = counts.data_ptr<int64_t>();
  const int64_t k = counts.size(0);
  for (int64_t i = 0; i < k; ++i) matrix.push_back(std::vector<int64_t>(c + i * k, c + (i + 1) * k));
  return {{"classes", r.classes}, {"matrix", matrix}};
}

torch::Tensor matrix_from_json(const json& rows) {
  const auto k = static_cast<int64_t>(rows.size());
  auto m = torch::zeros({k, k}, torch::kLong);
  auto* c = m.data_ptr<int64_t>();
  for (int64_t i = 0; i < k; ++i) {
    const auto row = rows.at(i).get<std::vector<int64_t>>();
    TORCH_CHECK(static_cast<int64_t>(row.size()) == k, "per-class JSON: confusion row ", i, " has ", row.size(),
                " counts, expected ", k);
    std::copy(row.begin(), row.end(), c + i * k);
  }
  return m;
}

}  // namespace

torch::Tensor confusion_matrix(const torch::Tensor& labels, const torch::Tensor& predictions, int64_t num_classes) {
  TORCH_CHECK(num_classes >= 1, "confusion_matrix: num_classes must be at least 1, got ", num_classes);
  TORCH_CHECK(labels.dim() == 1 && predictions.sizes() == labels.sizes(), "confusion_matrix: expected labels [N] and ",
              "predictions [N], got ", labels.sizes(), " and ", predictions.sizes());
  const auto t = labels.to(torch::kLong);
  const auto p = predictions.to(t.device(), torch::kLong);
  if (t.numel() > 0) {
    const auto low = std::min(t.min().item<int64_t>(), p.min().item<int64_t>());
    const auto high = std::max(t.max().item<int64_t>(), p.max().item<int64_t>());
    TORCH_CHECK(low >= 0 && high < num_classes, "confusion_matrix: class index ", low < 0 ? low : high,
                " outside [0, ", num_classes, ")");
  }
  return (t * num_classes + p).bincount({}, num_classes * num_classes).view({num_classes, num_classes});
}

std::vector<ClassScores> class_scores(const torch::Tensor& confusion, const std::vector<std::string>& classes) {
  const auto counts = cpu_counts(confusion);
  const int64_t k = counts.size(0);
  TORCH_CHECK(classes.empty() || static_cast<int64_t>(classes.size()) == k, "per-class metrics: ", classes.size(),
              " class names for a ", k, "-class confusion matrix");
  const auto support = counts.sum(1);
  const auto predicted = counts.sum(0);
  std::vector<ClassScores> scores;
  for (int64_t c = 0; c < k; ++c) {
    ClassScores s;
    s.name = class_name(classes, c);
    s.index = c;
    const auto tp = static_cast<double>(counts[c][c].item<int64_t>());
    s.support = support[c].item<int64_t>();
    s.predicted = predicted[c].item<int64_t>();
    s.precision = ratio(tp, static_cast<double>(s.predicted));
    s.recall = ratio(tp, static_cast<double>(s.support));
    s.f1 = ratio(2 * s.precision * s.recall, s.precision + s.recall);
    scores.push_back(s);
  }
  return scores;
}

ClassScores macro_average(const std::vector<ClassScores>& scores) {
  ClassScores a;
  a.name = "macro";
  int64_t occurring = 0;
  for (const auto& s : scores) {
    a.support += s.support;
    if (s.support == 0 && s.predicted == 0) continue;  // absent from labels and predictions
    a.precision += s.precision;
    a.recall += s.recall;
    a.f1 += s.f1;
    ++occurring;
  }
  a.precision = ratio(a.precision, occurring);
  a.recall = ratio(a.recall, occurring);
  a.f1 = ratio(a.f1, occurring);
  return a;
}

ClassScores weighted_average(const std::vector<ClassScores>& scores) {
  ClassScores a;
  a.name = "weighted";
  for (const auto& s : scores) {
    a.support += s.support;
    a.precision += s.precision * s.support;
    a.recall += s.recall * s.support;
    a.f1 += s.f1 * s.support;
  }
  a.precision = ratio(a.precision, a.support);
  a.recall = ratio(a.recall, a.support);
  a.f1 = ratio(a.f1, a.support);
  return a;
}

std::vector<ConfusedPair> most_confused(const torch::Tensor& confusion, const std::vector<std::string>& classes,
                                        int64_t top) {
  TORCH_CHECK(top >= 0, "most_confused: top must be >= 0, got ", top);
  const auto counts = cpu_counts(confusion);
  const int64_t k = counts.size(0);
  const auto* c = counts.data_ptr<int64_t>();
  std::vector<ConfusedPair> pairs;
  for (int64_t i = 0; i < k; ++i) {
    int64_t support = 0;
    for (int64_t j = 0; j < k; ++j) support += c[i * k + j];
    for (int64_t j = 0; j < k; ++j) {
      if (i == j || c[i * k + j] == 0) continue;
      pairs.push_back({i, j, class_name(classes, i), class_name(classes, j), c[i * k + j],
                       ratio(static_cast<double>(c[i * k + j]), static_cast<double>(support))});
    }
  }
  // Stable: pairs are already in (true, predicted) order, so ties keep it.
  std::stable_sort(pairs.begin(), pairs.end(), [](const auto& a, const auto& b) { return a.count > b.count; });
  if (static_cast<int64_t>(pairs.size()) > top) pairs.resize(top);
  return pairs;
}

PerClassReport per_class_report(const EvalResult& result, const std::vector<std::string>& classes,
                                int64_t top_pairs) {
  TORCH_CHECK(result.confusion.defined(), "per_class_report: the evaluation has no confusion matrix");
  PerClassReport r;
  r.confusion = cpu_counts(result.confusion);
  r.per_class = class_scores(r.confusion, classes);
  for (const auto& s : r.per_class) r.classes.push_back(s.name);
  r.macro = macro_average(r.per_class);
  r.weighted = weighted_average(r.per_class);
  r.confused_pairs = most_confused(r.confusion, r.classes, top_pairs);
  for (const auto& head : result.head_confusion) {
    TORCH_CHECK(head.sizes() == r.confusion.sizes(), "per_class_report: a head's confusion matrix is ", head.sizes(),
                ", the model's ", r.confusion.sizes());
    std::vector<double> recall;
    for (const auto& s : class_scores(head)) recall.push_back(s.recall);
    r.head_recall.push_back(recall);
  }
  return r;
}

nlohmann::json to_json(const PerClassReport& r) {
  json classes = json::array();
  for (const auto& s : r.per_class) {
    auto j = scores_json(s);
    j["class"] = s.name;
    j["index"] = s.index;
    classes.push_back(j);
  }
  json pairs = json::array();
  for (const auto& p : r.confused_pairs) {
    pairs.push_back({{"true", p.truth_name}, {"predicted", p.predicted_name}, {"true_index", p.truth},
                     {"predicted_index", p.predicted}, {"count", p.count}, {"rate", p.rate}});
  }
  json heads = json::array();
  for (const auto& recall : r.head_recall) heads.push_back({{"per_class", recall}});
  return {{"per_class", classes},         {"macro", scores_json(r.macro)},
          {"weighted", scores_json(r.weighted)}, {"confusion", confusion_json(r)},
          {"confused_pairs", pairs},      {"heads", heads}};
}

PerClassReport per_class_from_json(const nlohmann::json& j) {
  PerClassReport r;
  r.classes = j.at("confusion").at("classes").get<std::vector<std::string>>();
  r.confusion = matrix_from_json(j.at("confusion").at("matrix"));
  TORCH_CHECK(r.confusion.size(0) == static_cast<int64_t>(r.classes.size()), "per-class JSON: ", r.classes.size(),
              " class names for a ", r.confusion.size(0), "-class confusion matrix");
  const auto predicted = r.confusion.sum(0);
  for (const auto& c : j.at("per_class")) {
    const auto index = c.at("index").get<int64_t>();
    TORCH_CHECK(index >= 0 && index < predicted.size(0), "per-class JSON: class index ", index, " out of range");
    r.per_class.push_back(scores_from_json(c, c.at("class").get<std::string>(), index));
    r.per_class.back().predicted = predicted[index].item<int64_t>();
  }
  r.macro = scores_from_json(j.at("macro"), "macro", -1);
  r.weighted = scores_from_json(j.at("weighted"), "weighted", -1);
  for (const auto& p : j.at("confused_pairs")) {
    r.confused_pairs.push_back({p.at("true_index").get<int64_t>(), p.at("predicted_index").get<int64_t>(),
                                p.at("true").get<std::string>(), p.at("predicted").get<std::string>(),
                                p.at("count").get<int64_t>(), p.at("rate").get<double>()});
  }
  for (const auto& h : j.value("heads", json::array())) {
    if (h.contains("per_class")) r.head_recall.push_back(h.at("per_class").get<std::vector<double>>());
  }
  return r;
}

nlohmann::json to_json(const EvalResult& result, const PerClassReport& report) {
  auto j = to_json(result);
  auto extra = to_json(report);
  auto& heads = j["heads"];
  for (size_t h = 0; h < heads.size() && h < report.head_recall.size(); ++h) {
    heads[h]["per_class"] = extra["heads"][h]["per_class"];
  }
  extra.erase("heads");
  j.update(extra);
  return j;
}

}  // namespace splitshare::eval
