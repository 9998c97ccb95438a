#include <splitshare/data/datasets.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

namespace splitshare::data {

torch::Tensor stratified_holdout(const torch::Tensor& labels, double fraction, uint64_t seed) {
  TORCH_CHECK(fraction > 0 && fraction < 1, "--holdout must be a fraction in (0, 1), got ", fraction);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<torch::Tensor> chosen;
  const auto classes = std::get<0>(torch::_unique(labels));
  for (int64_t c = 0; c < classes.size(0); ++c) {
    const auto rows = labels.eq(classes[c]).nonzero().flatten();
    const auto take = static_cast<int64_t>(std::llround(fraction * static_cast<double>(rows.size(0))));
    if (take == 0) continue;
    chosen.push_back(rows.index_select(0, torch::randperm(rows.size(0), generator, torch::kInt64).narrow(0, 0, take)));
  }
  TORCH_CHECK(!chosen.empty(), "--holdout ", fraction, " leaves no sample of any class");
  return std::get<0>(torch::cat(chosen).sort());
}

torch::Tensor other_rows(int64_t n, const torch::Tensor& rows) {
  auto keep = torch::ones({n}, torch::kBool);
  keep.index_fill_(0, rows, false);
  return keep.nonzero().flatten();
}

}  // namespace splitshare::data
