#include <splitshare/data/loader.h>
#include <splitshare/data/transforms.h>

#include <algorithm>

namespace splitshare::data {

std::vector<int64_t> weighted_draws(const std::vector<double>& weights, int64_t count, std::mt19937_64& rng) {
  TORCH_CHECK(!weights.empty(), "weighted_draws: no weights");
  std::vector<double> cumulative(weights.size());
  double total = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    TORCH_CHECK(weights[i] >= 0, "sample weight ", i, " is negative: ", weights[i]);
    total += weights[i];
    cumulative[i] = total;
  }
  TORCH_CHECK(total > 0, "sample weights sum to 0");
  std::vector<int64_t> out(static_cast<size_t>(count));
  for (auto& index : out) {
    const double u = uniform01(rng) * total;
    const auto it = std::upper_bound(cumulative.begin(), cumulative.end(), u);
    index = std::min<int64_t>(static_cast<int64_t>(it - cumulative.begin()), static_cast<int64_t>(weights.size()) - 1);
  }
  return out;
}

}  // namespace splitshare::data

#include <splitshare/data/datasets.h>

#include <fstream>
#include <sstream>

namespace splitshare::data {

std::vector<double> balanced_class_weights(const std::vector<int64_t>& counts) {
  int64_t total = 0;
  for (auto c : counts) total += c;
  TORCH_CHECK(total > 0, "balanced class weights: no samples");
  std::vector<double> weights;
  for (auto c : counts) {
    weights.push_back(c > 0 ? static_cast<double>(total) / static_cast<double>(counts.size() * c) : 0.0);
  }
  return weights;
}

std::vector<double> read_class_weights(const std::string& path, int64_t classes) {
  std::ifstream in(path);
  TORCH_CHECK(in, "cannot read class weights file ", path);
  std::vector<double> weights;
  std::string line;
  while (std::getline(in, line)) {
    line = line.substr(0, line.find('#'));
    for (auto& c : line) {
      if (c == ',') c = ' ';
    }
    std::istringstream words(line);
    std::string word;
    while (words >> word) {
      size_t used = 0;
      double value = -1;
      try {
        value = std::stod(word, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      TORCH_CHECK(used == word.size() && value >= 0, path, ": class weight '", word,
                  "' is not a number >= 0");
      weights.push_back(value);
    }
  }
  TORCH_CHECK(static_cast<int64_t>(weights.size()) == classes, path, ": ", weights.size(), " class weights for ",
              classes, " classes");
  return weights;
}

}  // namespace splitshare::data
