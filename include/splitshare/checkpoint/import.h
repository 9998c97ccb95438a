#pragma once

#include <splitshare/data/dataset.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/checkpoint/checkpoint.h>

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace splitshare::train {

/// The files read_weights understands (both are zip archives, told apart by their records).
enum class WeightsFormat {
  /// `torch.jit.save` of a scripted or traced module (splitshare checkpoints included):
  ///   torch.jit.script(torchvision.models.resnet50(weights="DEFAULT")).save("resnet50.pt")
  kScriptModule,
  /// `torch.save` of a plain dict {name: tensor}:
  ///   torch.save(dict(torchvision.models.resnet50(weights="DEFAULT").state_dict()), "resnet50.pt")
  /// (libtorch cannot unpickle an OrderedDict, hence `dict(...)`).
  kStateDict,
};

/// "script module", "state dict".
std::string to_string(WeightsFormat format);

/// Tensors read from a file written by Python, under their state_dict names.
struct ForeignWeights {
  WeightsFormat format = WeightsFormat::kScriptModule;
  std::map<std::string, torch::Tensor> tensors;
};

/// Reads a scripted module or a state-dict archive. Throws naming `path` and the problem
/// when the file is missing, is not a zip-format torch archive (plain text, a legacy
/// pre-1.6 torch.save file), is truncated or corrupt, or holds something other than a
/// dict of tensors (an OrderedDict, nested dicts, non-tensor values).
ForeignWeights read_weights(const std::string& path);

/// The architecture (a name from nn::resnet_architectures()) whose torchvision layout the
/// tensors have: blocks per stage, basic or bottleneck blocks, groups and width per group
/// are read from the names and shapes. Empty when no architecture fits.
std::string infer_architecture(const std::map<std::string, torch::Tensor>& tensors);

/// Classes of the classifier in `tensors` (rows of fc.weight or fc.0.weight); 0 when there is none.
int64_t classifier_classes(const std::map<std::string, torch::Tensor>& tensors);

/// How strictly transfer_weights matches the backbone.
struct TransferOptions {
  /// true: any missing, unexpected or wrongly shaped backbone tensor is an error listing
  /// them all. false: copy what matches and report the rest in TransferReport::backbone.
  TORCH_ARG(bool, strict) = true;
};

/// What transfer_weights did.
struct TransferReport {
  /// Tensors copied into the model.
  int64_t copied = 0;
  /// Whether the head's tensors came from the weights (otherwise it keeps its fresh initialisation).
  bool head_loaded = false;
  /// Classes of the classifier in the weights (0 = none).
  int64_t source_classes = 0;
  /// Backbone mismatches (empty unless TransferOptions::strict is false).
  nn::StateMismatch backbone;
  /// Names in the weights that were not used (e.g. torchvision's fc.* under an SSM head).
  std::vector<std::string> unused;
  /// One line per decision a user should know about (head re-initialised and why, prefixes dropped).
  std::vector<std::string> notices;
};

/// Copies `weights` (checkpoint names, i.e. torchvision's for the backbone; a leading
/// "module." from DataParallel is dropped) into `model`. The backbone must match
/// (see TransferOptions::strict; the error names every key at fault and the architecture
/// the weights look like). The head (fc.*, bn.*) is copied when the weights hold the same
/// head with the same shapes; otherwise it keeps its fresh initialisation and a notice
/// says why (a different class count: fine-tuning to new classes; another head kind). A
/// head-selection gate (`gate.*`) is left behind with a notice. `source` names the file in messages.
TransferReport transfer_weights(nn::ClassifierImpl& model, const std::map<std::string, torch::Tensor>& weights,
                                const std::string& source, const TransferOptions& options = {});

/// torchvision's ImageNet evaluation preprocessing: RGB, resize the shorter side to
/// crop / 0.875 (256 for 224), centre crop, ImageNet mean and std.
data::Preprocess imagenet_preprocess(int64_t crop = 224);

/// What `splitshare import` builds.
///
///   auto result = import_weights("resnet50.pt", ImportOptions().model(
///       nn::ClassifierOptions().arch("resnet50").num_classes(10).head(nn::HeadOptions().kind(nn::HeadKind::kSSM))));
struct ImportOptions {
  /// The model to build. arch "auto" = infer_architecture; num_classes 0 = the weights' classifier's.
  TORCH_ARG(nn::ClassifierOptions, model) = nn::ClassifierOptions().arch("auto").num_classes(0);
  /// Class names (index = class); empty = unnamed, or must have num_classes entries.
  TORCH_ARG(std::vector<std::string>, classes) = {};
  TORCH_ARG(data::Preprocess, preprocess) = imagenet_preprocess();
  TORCH_ARG(bool, strict) = true;
  /// Seeds the initialisation of a head that is not loaded.
  TORCH_ARG(uint64_t, seed) = 0;
};

/// A model built from foreign weights, ready for save_checkpoint.
struct ImportResult {
  nn::Classifier model{nullptr};
  /// Model options, classes, preprocessing; extra["import"] records the source file,
  /// its format and the notices.
  CheckpointMetadata metadata;
  WeightsFormat format = WeightsFormat::kScriptModule;
  TransferReport report;
};

/// read_weights + make_classifier + transfer_weights. Throws naming `path` for unreadable
/// files, an architecture that cannot be inferred, a missing class count, or mismatches.
ImportResult import_weights(const std::string& path, const ImportOptions& options);

}  // namespace splitshare::train
