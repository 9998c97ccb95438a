#pragma once

#include <splitshare/explain/figure.h>
#include <splitshare/explain/gradcam.h>
#include <splitshare/checkpoint/checkpoint.h>

#include <torch/torch.h>

#include <string>
#include <vector>

namespace splitshare::explain {

/// The images to explain, normalised as a checkpoint expects, with what is known about them.
struct ExplainInputs {
  /// float [N, C, H, W].
  torch::Tensor images;
  /// int64 [N], or undefined when no labels are known.
  torch::Tensor labels;
  /// A file path or "DATA[index]" per image.
  std::vector<std::string> sources;
  /// File-name stems for the overlays.
  std::vector<std::string> stems;
};

/// Image files preprocessed as `metadata` says. A file in a folder named after one of the
/// checkpoint's classes (DIR/<class>/<file>) is labelled with it; labels are kept only when
/// every file has one. Throws naming a file that is unreadable or preprocesses to another size.
ExplainInputs inputs_from_files(const std::vector<std::string>& paths, const train::CheckpointMetadata& metadata);

/// Validation images `first` .. `first + count - 1` of the dataset `spec_text` names (as
/// `train --data`), with their labels, normalised as `metadata` says.
ExplainInputs inputs_from_data(const std::string& spec_text, int64_t first, int64_t count,
                               const train::CheckpointMetadata& metadata);

/// The classes to explain, int64 [N]: "label" (the true classes), "pred" (undefined: each image's
/// prediction), a class name or index; "auto" is label with `from_data`, pred otherwise.
torch::Tensor resolve_targets(const std::string& target, const ExplainInputs& in,
                              const std::vector<std::string>& classes, int64_t num_classes, bool from_data);

/// What `splitshare gradcam` writes into `out` (created): each image's input and one overlay PNG
/// per map (the whole model, then each split or head), grid.png, and gradcam.json describing
/// them, with `checkpoint` and `target` as given. Returns the number of overlays written.
int64_t write_gradcam_folder(const std::string& out, const HeadCams& cams, CamMethod method, const ExplainInputs& in,
                             const train::CheckpointMetadata& metadata, int64_t feature_channels,
                             const FigureOptions& figure, const std::string& checkpoint, const std::string& target);

}  // namespace splitshare::explain
