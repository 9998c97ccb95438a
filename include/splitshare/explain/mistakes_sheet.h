#pragma once

#include <splitshare/data/dataset.h>
#include <splitshare/eval/mistakes.h>
#include <splitshare/explain/figure.h>

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace splitshare::explain {

/// How the contact sheet of mistakes is laid out.
///
/// ```
/// auto sheet = mistakes_sheet(mistakes, checkpoint.preprocess, classes, SheetOptions().columns(4));
/// ```
struct SheetOptions {
  /// Tiles per row (fewer when there are fewer mistakes).
  TORCH_ARG(int64_t, columns) = 6;
  /// Enlargement of small images (FigureOptions::min_size).
  TORCH_ARG(FigureOptions, figure) = {};
};

/// A contact sheet of misclassified samples, in the order given: each tile is the image
/// (denormalised with `preprocess` mean/std, enlarged by display_scale) over three lines,
/// "true: <class>", "pred: <class>" and "conf <p>%". With f = display_scale(H, W),
/// n mistakes, c = min(n, columns) and r = ceil(n / c), the sheet is uint8 RGB
/// [3, 12 + r (H f + 31) + 6 (r - 1), 12 + c W f + 6 (c - 1)]. Throws when `mistakes` is empty.
torch::Tensor mistakes_sheet(const std::vector<eval::Mistake>& mistakes, const data::Preprocess& preprocess,
                             const std::vector<std::string>& classes, const SheetOptions& options = {});

}  // namespace splitshare::explain
