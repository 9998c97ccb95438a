#pragma once

#include <splitshare/data/dataset.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/nn/inference.h>
#include <splitshare/nn/predictor.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace splitshare::eval {

/// Reads a JPEG or PNG file (grey or colour, any size) and applies a checkpoint's
/// preprocessing: decoded to `preprocess.channels` channels; with resize/crop set, the
/// evaluation transform (shorter side resized, centre crop); with neither, the whole
/// image resized to size x size (antialiased bilinear, as data::resample); then
/// normalised with mean/std. Returns float [C, H, W]. Throws naming `path`.
torch::Tensor load_image(const std::string& path, const data::Preprocess& preprocess);

/// How predict runs.
struct PredictOptions {
  /// Classes listed per image (capped at the number of classes).
  TORCH_ARG(int64_t, topk) = 5;
  /// Images decoded and classified together.
  TORCH_ARG(int64_t, batch_size) = 16;
  /// Keep each preprocessed image in Prediction::input (for checks against other tools).
  TORCH_ARG(bool, keep_inputs) = false;
  TORCH_ARG(torch::Device, device) = torch::kCPU;
  /// The backbone's arithmetic (nn::InferenceOptions::dtype): torch::kFloat or torch::kBFloat16.
  TORCH_ARG(torch::Dtype, dtype) = torch::kFloat;
  /// Test-time augmentation: the mean of the logits (combined and per head) of each image and
  /// its left-right mirror.
  TORCH_ARG(bool, flip_tta) = false;
  /// predict_paths: decoding threads (0 = the calling thread), and whether an unreadable file
  /// stops the run (otherwise it is skipped, counted and named).
  TORCH_ARG(int64_t, workers) = 0;
  TORCH_ARG(bool, strict) = false;
};

/// One class of a top-k list.
struct ClassScore {
  int64_t index = 0;
  /// The class name from the checkpoint metadata, or the index as text when it has none.
  std::string label;
  /// Softmax of the combined logits.
  double probability = 0;
};

/// The model's answer for one image.
struct Prediction {
  std::string path;
  /// Most probable classes first.
  std::vector<ClassScore> topk;
  /// Combined logits, float [K].
  torch::Tensor logits;
  /// Per sub-classifier logits, S x float [K] (one entry for a linear head).
  std::vector<torch::Tensor> head_logits;
  /// The preprocessed image, float [C, H, W] (only with PredictOptions::keep_inputs).
  torch::Tensor input;
};

/// Classifies preprocessed images [N, C, H, W] (model in evaluation mode, no gradients);
/// `classes` names the labels (may be empty). Paths are left empty.
std::vector<Prediction> predict(nn::ClassifierImpl& model, const torch::Tensor& images,
                                const std::vector<std::string>& classes, const PredictOptions& options = {});

/// The same with a model already frozen for inference (a folded InferenceModel, a QuantizedModel,
/// a checkpoint's make_predictor); options.dtype() is the predictor's own affair then.
std::vector<Prediction> predict(const nn::Predictor& model, const torch::Tensor& images,
                                const std::vector<std::string>& classes, const PredictOptions& options = {});

/// load_image + predict for image files, batch by batch, in the order given.
std::vector<Prediction> predict_files(nn::ClassifierImpl& model, const data::Preprocess& preprocess,
                                      const std::vector<std::string>& classes, const std::vector<std::string>& paths,
                                      const PredictOptions& options = {});

/// Image paths from command-line arguments, in the order given: a file as is, a folder as
/// its image files (has_image_extension) found recursively, sorted by path, and "@LIST" as
/// the paths listed in the file LIST (one per line; blank lines and '#' comments skipped;
/// folders allowed). A missing path, an empty folder or an unreadable list is an error naming it.
std::vector<std::string> expand_image_arguments(const std::vector<std::string>& arguments);

/// What predict_paths did besides predicting.
struct PredictRun {
  int64_t predicted = 0;
  /// Unreadable files skipped (without PredictOptions::strict) and their messages (the first 10).
  int64_t skipped = 0;
  std::vector<std::string> skipped_reports;
};

/// Predicts `paths` batch by batch through the image-folder loader (PredictOptions::workers
/// decoding threads, the checkpoint's evaluation transform with full-size decoding, so the
/// inputs equal load_image's) and hands each batch's predictions to `on_batch` in input
/// order, so a large folder is never held in memory. `on_progress(done, total)` after each batch.
PredictRun predict_paths(nn::ClassifierImpl& model, const data::Preprocess& preprocess,
                         const std::vector<std::string>& classes, const std::vector<std::string>& paths,
                         const PredictOptions& options, const std::function<void(std::vector<Prediction>&)>& on_batch,
                         const std::function<void(int64_t, int64_t)>& on_progress = nullptr);
/// The same through a model already frozen for inference (a checkpoint's make_predictor).
PredictRun predict_paths(const nn::Predictor& model, const data::Preprocess& preprocess,
                         const std::vector<std::string>& classes, const std::vector<std::string>& paths,
                         const PredictOptions& options, const std::function<void(std::vector<Prediction>&)>& on_batch,
                         const std::function<void(int64_t, int64_t)>& on_progress = nullptr);

/// A CSV header and row for a prediction: path, the top-k classes and probabilities
/// (label_1, prob_1, ...), then each head's top-1 label (head_1, ...).
std::string csv_header(int64_t topk, int64_t heads);
std::string csv_row(const Prediction& prediction, const std::vector<std::string>& classes);

/// {"path", "topk": [{"class", "label", "prob"}], "logits": [K], "head_logits": [[K] per split]}.
nlohmann::json to_json(const Prediction& prediction);

}  // namespace splitshare::eval
