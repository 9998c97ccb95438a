#pragma once

#include <splitshare/nn/classifier.h>
#include <splitshare/checkpoint/checkpoint.h>

#include <torch/script.h>

#include <string>

namespace splitshare::train {

/// How export_torchscript writes and checks the file.
///
/// ```
/// export_torchscript("runs/train/best.pt", "model.ts", ExportOptions().verify(false));
/// ```
struct ExportOptions {
  /// After building the module, run it and the folded model (nn::InferenceModel, dense
  /// path) on two random images of the checkpoint's input size and refuse to write the
  /// file when their logits differ by more than 1e-3 (relative to the largest logit).
  TORCH_ARG(bool, verify) = true;
  /// Seed of those random images.
  TORCH_ARG(uint64_t, seed) = 0;
};

/// What export_torchscript wrote.
struct ExportSummary {
  /// Tensors (weights, biases, SSM scales and shifts) in the module.
  int64_t tensors = 0;
  /// Largest |logit| difference between the module and the folded model (verify), or -1.
  double max_difference = -1;
  /// The image side verify used (0 without verify).
  int64_t image_size = 0;
};

/// The name of the extra file holding an export's metadata (as a checkpoint's).
constexpr const char* kExportMetadataFile = "splitshare.json";
/// Its "format" field (a checkpoint's is "splitshare-checkpoint", so load_checkpoint
/// refuses an export by name).
constexpr const char* kExportFormat = "splitshare-torchscript";

/// A self-contained TorchScript module of `model` in evaluation mode, every BatchNorm
/// folded into the convolution before it (nn::InferenceModel's folding) and only standard
/// aten operators in its graph: `forward(x: Tensor[N, C, H, W]) -> (logits [N, K],
/// head_logits [S, N, K])`, what `predict` computes (S = 1 for a linear head, the splits
/// of an SSM, k for k-FC). Tensors keep torchvision's names without the BatchNorms
/// (conv1.weight, conv1.bias, layer1.0.conv1.*, layer1.0.downsample.0.*, fc.* or
/// fc.{i}.*, and an SSM split's folded BatchNorm as bn.{i}.scale / bn.{i}.shift);
/// the attribute `classes` lists the class names. A model with a head-selection gate
/// (nn::GateImpl) keeps it as `gate.fc1.*` (and `gate.fc2.*`): `logits` is then the gated
/// combination.
torch::jit::Module torchscript_module(nn::ClassifierImpl& model, const CheckpointMetadata& metadata);

/// The "format" field of an ONNX export's metadata.
constexpr const char* kOnnxFormat = "splitshare-onnx";

/// The JSON stored as the export's `splitshare.json` (TorchScript) or metadata property
/// `splitshare` (ONNX): the checkpoint metadata with "format" = `format` and an "outputs"
/// description.
nlohmann::json export_metadata(const CheckpointMetadata& metadata, const std::string& format = kExportFormat);

/// Writes torchscript_module(model, metadata) to `out` (atomically, as save_checkpoint)
/// with export_metadata as extra file. Python runs it with `torch.jit.load(out)(x)`,
/// C++ with `torch::jit::load(out).forward({x})`, neither needing splitshare.
ExportSummary export_torchscript(nn::ClassifierImpl& model, const CheckpointMetadata& metadata,
                                 const std::string& out, const ExportOptions& options = {});

/// The same for the checkpoint file `checkpoint` (checkpoint.pt, best.pt or an import);
/// throws naming the file when it is missing or not a splitshare checkpoint.
ExportSummary export_torchscript(const std::string& checkpoint, const std::string& out,
                                 const ExportOptions& options = {});

/// The ONNX opsets export_onnx writes (every operator it uses has kept its meaning across
/// them; the tests run each in ONNX Runtime).
constexpr int64_t kOnnxMinOpset = 17;
constexpr int64_t kOnnxMaxOpset = 24;

/// How export_onnx writes and checks the file.
///
/// ```
/// export_onnx("runs/train/best.pt", "model.onnx", OnnxOptions().opset(18).fixed_batch(8));
/// ```
struct OnnxOptions {
  /// The default-domain opset, kOnnxMinOpset … kOnnxMaxOpset; the file's IR version follows it.
  TORCH_ARG(int64_t, opset) = 17;
  /// 0: the batch dimension is symbolic ("batch"); N > 0: fixed to N (for runtimes that want
  /// static shapes). Height and width are always symbolic ("height", "width").
  TORCH_ARG(int64_t, fixed_batch) = 0;
  /// Before writing, run the graph with aten operators (the reference evaluator) against
  /// the folded model on two random images, as ExportOptions::verify.
  TORCH_ARG(bool, verify) = true;
  /// Seed of those random images.
  TORCH_ARG(uint64_t, seed) = 0;
};

/// Writes `model` in evaluation mode as an ONNX file (our own protobuf writer; BatchNorm
/// folded; operators Conv, Relu, MaxPool, Add, GlobalAveragePool, Flatten, Slice, Mul, Gemm,
/// Unsqueeze, Concat, ReduceSum; with a gate also LogSoftmax, Transpose, Reshape, Softmax, and
/// ArgMax and OneHot for a hard one): input `input` [N, C, H, W] float32, already normalised as
/// the metadata's preprocessing says; outputs `logits` [N, K] and `head_logits` [S, N, K],
/// what `predict` computes. Initializers keep the TorchScript export's names. Metadata
/// properties: `splitshare` (export_metadata with kOnnxFormat), `classes` (JSON list),
/// `preprocess` (JSON object), `head` (JSON: head, splits, k, last_plain, reduction) and
/// `outputs`. Written atomically; throws for an opset or batch size out of range.
ExportSummary export_onnx(nn::ClassifierImpl& model, const CheckpointMetadata& metadata, const std::string& out,
                          const OnnxOptions& options = {});

/// The same for the checkpoint file `checkpoint`; throws naming the file when it is missing
/// or not a splitshare checkpoint.
ExportSummary export_onnx(const std::string& checkpoint, const std::string& out, const OnnxOptions& options = {});

/// The serialised ONNX model (what export_onnx writes, without the check).
std::string onnx_model(nn::ClassifierImpl& model, const CheckpointMetadata& metadata, const OnnxOptions& options = {});

}  // namespace splitshare::train
