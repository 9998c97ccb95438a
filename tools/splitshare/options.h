#pragma once

#include "splitshare/option_values.h"

#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/data/datasets.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/run/folder.h>
#include <splitshare/train/fit.h>

#include <cxxopts.hpp>

#include <memory>
#include <optional>
#include <string>

namespace splitshare::cli {

/// A default as --help shows it, taken from the options struct so the two cannot drift.
std::string text(int64_t value);
std::string text(uint64_t value);
std::string text(double value);

/// Registers --arch, --head, --splits, --k, --ssm-norm (--last-plain), --width, --stem.
void add_model_options(cxxopts::Options& options);
/// The model the flags describe, for data with `classes` classes of `channels`
/// channels; "auto" values pick the small-image or ImageNet defaults.
nn::ClassifierOptions model_options(const cxxopts::ParseResult& args, int64_t classes, int64_t channels,
                                    bool small_images);

/// Registers --data, --batch-size, --workers, --seed, --augment, --limit-train, --limit-val, --image-size, --strict.
void add_data_options(cxxopts::Options& options);
data::DataSpec data_spec(const cxxopts::ParseResult& args);
data::DataOptions data_options(const cxxopts::ParseResult& args);
/// Says on stderr, as `splitshare COMMAND`, that an image folder of small images is read
/// like CIFAR (DataOptions::small_image_side) and how to choose the photo pipeline instead.
void note_small_image_folder(const data::DataBundle& bundle, const data::DataOptions& options, const char* command);

/// Registers --epochs, --lr, --momentum, --weight-decay, --schedule, --milestones, --warmup-epochs,
/// --loss, --out, --no-progress, --no-channels-last, --channels-last, --device, --amp, --sync-bn, --no-overlap.
/// Defaults of the training flags that differ between commands.
/// The defaults `train` and `compare` show and use: the library's TrainOptions (compare
/// changes the schedule) and the output folder.
struct TrainDefaults {
  std::string out = "runs/train";
  train::TrainOptions options;
  /// Without --out, each run gets a new folder `out`-<date>-<n> (run::fresh_folder) instead
  /// of `out` itself.
  bool fresh_out = true;
};
void add_train_options(cxxopts::Options& options, const TrainDefaults& defaults);
/// The hyper-parameters the training flags give (--batch-size from the data flags). --amp
/// auto is resolved here (train::resolve_precision); `precision_note` gets the line that says
/// which precision and why (or the warning for a bf16 slower than fp32 here).
train::TrainOptions train_options(const cxxopts::ParseResult& args, std::string* precision_note = nullptr);
/// Sets `train`'s weight decay from --weight-decay (auto: default_weight_decay(small_images)).
void apply_weight_decay(const cxxopts::ParseResult& args, bool small_images, train::TrainOptions& train);
/// Registers the training recipe's flags (optimizer, regularisation, augmentation, EMA,
/// clipping, accumulation, imbalance, validation split, class map): recipe.cpp.
void add_recipe_options(cxxopts::Options& options);
/// Sets `train`'s recipe from those flags (class weights come later: apply_class_weights).
void apply_recipe_options(const cxxopts::ParseResult& args, train::TrainOptions& train);
/// Sets the data side of the recipe (augmentation, crops, split, class map, sampler).
void apply_data_recipe(const cxxopts::ParseResult& args, data::DataOptions& data);
/// --class-weights auto|FILE, once the data (and its class counts) is open.
void apply_class_weights(const cxxopts::ParseResult& args, const data::DataBundle& bundle, train::TrainOptions& train);

/// What `eval` and the other commands reading a trained run need to see its data as it did:
/// the validation split recorded next to `checkpoint` (val_files.txt) and the run's --class-map.
void follow_run_data(const std::string& checkpoint, data::DataOptions& data);

/// The data a command reading checkpoint `checkpoint` evaluates on (eval, select): --data when
/// given, else the data the run recorded (said on stderr as `splitshare COMMAND`), else the
/// default Fashion-MNIST for a model of its images, refused otherwise (pass --data).
data::DataSpec run_data_spec(const cxxopts::ParseResult& args, const std::string& checkpoint, const char* command);
/// The same without --data, as text: the data the run recorded (said on stderr, naming `flag` as
/// the way to choose other data, unless it is `default_data`), else `default_data` for a model of
/// Fashion-MNIST's images, refused otherwise.
std::string recorded_data(const std::string& checkpoint, const char* command, const char* flag,
                          const std::string& default_data);

/// The hold-out `train --holdout` left out of the run that wrote a checkpoint.
struct RunHoldout {
  double fraction = 0;
  uint64_t seed = 0;
  /// The run's --limit-train: the hold-out is drawn from those samples.
  int64_t limit_train = 0;
};
/// Read from the checkpoint's recorded arguments; nullopt when the run trained on all of its
/// training split (or recorded no arguments).
std::optional<RunHoldout> run_holdout(const std::string& checkpoint);

/// The run's context the training flags give: --out (or the default of `defaults`), --device, --no-progress.
train::RunContext run_context(const cxxopts::ParseResult& args, const TrainDefaults& defaults);

/// Registers --overwrite (commands that write a folder: train, select, gradcam).
void add_overwrite_option(cxxopts::Options& options);
/// Claims the output folder `out` of `splitshare COMMAND` (run::FolderClaim) before anything is
/// written: another process writing it is refused; results already in it are kept when
/// `continue_existing`, moved aside with --overwrite, and refused otherwise, with the choices
/// (`other_choice`, if any, then --out and --overwrite). Null when `out` is empty.
std::unique_ptr<run::FolderClaim> claim_output(const cxxopts::ParseResult& args, const std::string& out,
                                               const std::string& command, bool continue_existing,
                                               const std::string& other_choice = "");

/// Registers --init, --freeze-backbone, --head-lr (fine-tuning; `train` only).
void add_finetune_options(cxxopts::Options& options);
/// Copies --freeze-backbone and --head-lr into `train`.
void apply_finetune_options(const cxxopts::ParseResult& args, train::TrainOptions& train);
/// The model `--init CK` starts from, for data with `classes` classes of `channels` channels:
/// CK's architecture (explicit --arch/--width/--stem must agree with it), CK's head unless
/// --head/--splits/--k/--ssm-norm/--last-plain are given, and CK's tensors. A head that does not fit
/// (another class count or kind) is re-initialised; the notices are printed to stderr.
nn::Classifier init_model(const cxxopts::ParseResult& args, int64_t classes, int64_t channels,
                          nn::ClassifierOptions& model_options);

/// Registers --threads; configure_threads applies it and returns the count in effect.
void add_thread_option(cxxopts::Options& options);
/// `processes_per_machine` > 1 divides the default (all cores) between local ranks.
int configure_threads(const cxxopts::ParseResult& args, int64_t processes_per_machine = 1);

/// Registers --amp for inference commands (eval, predict): auto (the default), fp32, or bf16
/// for a bfloat16 backbone.
void add_inference_precision_option(cxxopts::Options& options);
/// The backbone dtype --amp asks for on `device` (torch::kFloat or torch::kBFloat16; auto
/// resolved by train::resolve_precision; its reason printed to stderr when it is not fp32, or
/// the warning for a bf16 slower than fp32 here); rejects fp16.
torch::Dtype inference_dtype(const cxxopts::ParseResult& args, const torch::Device& device);
/// The model `eval` and `predict` run for `loaded` (train::make_predictor): its int8 form for a
/// quantized checkpoint (said on stderr as `splitshare COMMAND`; an explicit --amp other than
/// auto is refused for it), else the float model folded with `dtype`.
std::unique_ptr<nn::Predictor> inference_model(const cxxopts::ParseResult& args, const train::LoadedCheckpoint& loaded,
                                               torch::Dtype dtype, const char* command);

/// Registers --tta none|flip (eval, predict); tta_flip reads it (refusing other values by name).
void add_tta_option(cxxopts::Options& options);
bool tta_flip(const cxxopts::ParseResult& args);

/// Parses argv; prints help and returns nullopt for --help.
std::optional<cxxopts::ParseResult> parse(cxxopts::Options& options, int argc, char** argv);


/// The metadata of a fresh model trained on `bundle`.
train::CheckpointMetadata fresh_metadata(const nn::ClassifierOptions& model, const data::DataBundle& bundle);

}  // namespace splitshare::cli
