#include "splitshare/options.h"

#include <splitshare/train/precision_probe.h>

#include <splitshare/checkpoint/import.h>
#include <splitshare/run/folder.h>
#include <splitshare/util/device.h>
#include <splitshare/util/numbers.h>
#include <splitshare/util/progress.h>
#include <splitshare/util/runtime.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace splitshare::cli {
std::string text(int64_t value) { return std::to_string(value); }
std::string text(uint64_t value) { return std::to_string(value); }
std::string text(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", value);
  return buffer;
}

void add_model_options(cxxopts::Options& options) {
  options.add_options("Model")
      ("arch", "backbone: resnet10|resnet18|34|50|101|152|resnext50_32x4d|resnext101_32x4d|resnext101_32x8d|"
               "wide_resnet50_2|wide_resnet101_2 (auto: resnet10 for small images, resnet50 otherwise)",
       cxxopts::value<std::string>()->default_value("auto"))
      ("head", "classifier head: linear|ssm|kfc",
       cxxopts::value<std::string>()->default_value(nn::to_string(nn::HeadOptions().kind())))
      ("splits", "SSM sub-classifiers", number<int64_t>()->default_value(text(nn::HeadOptions().splits())))
      ("k,kfc-k", "kfc: parallel classifiers (also --k K)",
       number<int64_t>()->default_value(text(nn::HeadOptions().k())))
      ("ssm-norm", "SSM: BatchNorm+ReLU on the 'first' S-1 splits (Section 3's text, Table 4's count) or on "
                   "'all' S (Algorithm 1)",
       cxxopts::value<std::string>()->default_value(nn::HeadOptions().last_plain() ? "first" : "all"))
      ("last-plain", "SSM: same as --ssm-norm first")
      ("width", "channels of the first stage (auto: 16 for small images, 64 = torchvision otherwise)",
       cxxopts::value<std::string>()->default_value("auto"))
      ("stem", "small|imagenet (auto: from the data)", cxxopts::value<std::string>()->default_value("auto"));
}

namespace {

bool ssm_last_plain(const cxxopts::ParseResult& args) {
  const auto norm = args["ssm-norm"].as<std::string>();
  TORCH_CHECK(norm == "first" || norm == "all", "--ssm-norm: expected first or all, got '", norm, "'");
  TORCH_CHECK(!(args.count("last-plain") && norm == "all"), "--last-plain and --ssm-norm all contradict each other");
  return norm == "first";
}

nn::HeadOptions head_options(const cxxopts::ParseResult& args) {
  return nn::HeadOptions()
      .kind(nn::parse_head_kind(args["head"].as<std::string>()))
      .splits(args["splits"].as<int64_t>())
      .k(args["kfc-k"].as<int64_t>())
      .last_plain(ssm_last_plain(args));
}

}  // namespace

nn::ClassifierOptions model_options(const cxxopts::ParseResult& args, int64_t classes, int64_t channels,
                                    bool small_images) {
  const auto arch = args["arch"].as<std::string>();
  const auto width = args["width"].as<std::string>();
  const auto stem = args["stem"].as<std::string>();
  const auto head = head_options(args);
  int64_t width_value = small_images ? 16 : 64;
  if (width != "auto") {
    const auto parsed = util::parse_number<int64_t>(width);
    TORCH_CHECK(parsed, "--width expects a positive integer or auto, got '", width, "'");
    width_value = *parsed;
    TORCH_CHECK(width_value >= 1, "--width must be positive, got ", width_value);
  }
  return nn::ClassifierOptions()
      .arch(arch == "auto" ? (small_images ? "resnet10" : "resnet50") : arch)
      .num_classes(classes)
      .in_channels(channels)
      .head(head)
      .width(width_value)
      .stem(stem == "auto" ? (small_images ? nn::Stem::kSmall : nn::Stem::kImageNet) : nn::parse_stem(stem));
}

void add_data_options(cxxopts::Options& options) {
  const data::DataOptions data;
  options.add_options("Data")
      ("data", "fashion-mnist | fashion-mnist:DIR | mnist:DIR | cifar10:DIR | cifar100:DIR | imagefolder:DIR | "
               "imagefolder:TRAIN,VAL | wds:DIR | wds:DIR/train-{000000..000009}.tar",
       cxxopts::value<std::string>()->default_value("fashion-mnist"))
      ("batch-size", "training batch size", number<int64_t>()->default_value(text(data.batch_size())))
      ("eval-batch-size", "evaluation batch size",
       number<int64_t>()->default_value(text(data.eval_batch_size())))
      ("workers", "image decoding threads (image folders; 0 = the training thread)",
       number<int64_t>()->default_value(text(data.workers())))
      ("seed", "seed of initialisation and data order", number<uint64_t>()->default_value(text(data.seed())))
      ("augment", "photo folders: paper (resize to 256x256, random 224 crop, flip; evaluation: 256x256, centre "
                  "224) | torchvision (RandomResizedCrop + flip; evaluation: shorter side 256, centre 224) | none. "
                  "28/32-px data: pad-crop-flip unless none",
       cxxopts::value<std::string>()->default_value(data::to_string(data.photo_recipe())))
      ("limit-train", "use only the first N training samples (0 = all)",
       number<int64_t>()->default_value(text(data.limit_train())))
      ("limit-val", "use only the first N validation samples (0 = all)",
       number<int64_t>()->default_value(text(data.limit_val())))
      ("image-size", "training crop for photos; given, it also reads a folder of small images (at most " +
                         text(data.small_image_side()) + " px) through the photo pipeline instead of into memory",
       number<int64_t>()->default_value(text(data.image_size())))
      ("strict", "stop at the first unreadable image instead of skipping it");
}

void note_small_image_folder(const data::DataBundle& bundle, const data::DataOptions& options, const char* command) {
  if (!bundle.small_images || bundle.train_files.empty() || !bundle.preprocess.size) return;
  const auto side = static_cast<long long>(*bundle.preprocess.size);
  std::fprintf(stderr, "splitshare %s: image folder of %lldx%lld images: read into memory like CIFAR (no resize, "
               "augmentation %s, the small-image model's defaults); --image-size N reads it through the photo "
               "pipeline instead\n", command, side, side, options.augment() ? "pad-crop-flip" : "none");
}

data::DataSpec data_spec(const cxxopts::ParseResult& args) { return data::parse_data_spec(args["data"].as<std::string>()); }

data::DataOptions data_options(const cxxopts::ParseResult& args) {
  const auto batch = args["batch-size"].as<int64_t>();
  TORCH_CHECK(batch >= 1, "--batch-size must be positive, got ", batch);
  const auto eval_batch = args["eval-batch-size"].as<int64_t>();
  TORCH_CHECK(eval_batch >= 1, "--eval-batch-size must be positive, got ", eval_batch);
  TORCH_CHECK(args["workers"].as<int64_t>() >= 0, "--workers must be >= 0, got ", args["workers"].as<int64_t>());
  TORCH_CHECK(args["limit-train"].as<int64_t>() >= 0 && args["limit-val"].as<int64_t>() >= 0,
              "--limit-train/--limit-val must be >= 0");
  const auto augment = args["augment"].as<std::string>();
  TORCH_CHECK(augment == "none" || augment == "paper" || augment == "torchvision",
              "--augment: expected paper, torchvision or none, got '", augment, "'");
  // Asking for a photo crop or recipe by name keeps a folder of small images in the photo pipeline.
  const bool photo_pipeline = args.count("image-size") || (args.count("augment") && augment != "none");
  return data::DataOptions()
      .small_image_side(photo_pipeline ? 0 : data::DataOptions().small_image_side())
      .augment(augment != "none")
      .photo_recipe(augment == "torchvision" ? data::PhotoRecipe::kTorchvision : data::PhotoRecipe::kPaper)
      .batch_size(batch)
      .eval_batch_size(eval_batch)
      .workers(args["workers"].as<int64_t>())
      .seed(args["seed"].as<uint64_t>())
      .limit_train(args["limit-train"].as<int64_t>())
      .limit_val(args["limit-val"].as<int64_t>())
      .image_size(args["image-size"].as<int64_t>())
      .strict(args.count("strict") > 0);
}

void add_train_options(cxxopts::Options& options, const TrainDefaults& defaults) {
  const auto& o = defaults.options;
  options.add_options("Training")
      ("epochs", "training epochs", number<int64_t>()->default_value(text(o.epochs())))
      ("lr", "base learning rate (0 = 0.1 x batch/256, the paper's rate scaled linearly)",
       number<double>()->default_value(text(o.lr())))
      ("momentum", "SGD momentum", number<double>()->default_value(text(o.momentum())))
      ("weight-decay", "L2 weight decay (auto: " + text(train::kPaperWeightDecay) + ", the paper's, for photo folders; " +
                           text(train::kSmallImageWeightDecay) + " for 28/32-px data, the usual small-image recipe)",
       cxxopts::value<std::string>()->default_value("auto"))
      ("nesterov", "Nesterov momentum")
      ("loss", "joint (loss on the averaged logits, the paper) | individual (per-head losses combined)",
       cxxopts::value<std::string>()->default_value(nn::to_string(o.loss())))
      ("individual-reduction", "individual loss: sum (each head as if trained alone) | mean of the per-head losses",
       cxxopts::value<std::string>()->default_value(nn::to_string(o.individual_reduction())))
      ("schedule", "step | cosine", cxxopts::value<std::string>()->default_value(train::to_string(o.schedule())))
      ("milestones", "step schedule epochs, comma-separated (default: 1/3 and 2/3 of the run)",
       number<std::vector<int64_t>>())
      ("warmup-epochs", "linear warm-up epochs", number<double>()->default_value(text(o.warmup_epochs())))
      ("out", defaults.fresh_out ? "output folder (default: a new " + defaults.out + "-<date>-<n> for each run)"
                                 : "output folder (default: " + defaults.out + ")", cxxopts::value<std::string>())
      ("no-channels-last", "keep NCHW layout")
      ("channels-last", "channels-last layout of weights and batches (the default)")
      ("device", "cpu | cuda | cuda:N (under launch/torchrun, cuda = cuda:LOCAL_RANK)",
       cxxopts::value<std::string>()->default_value(train::RunContext().device().str()))
      ("amp", "precision: auto (bf16 where a short probe shows it faster: CUDA, CPUs with AMX or AVX512-BF16 "
              "at speed; else fp32) | bf16 autocast | fp16 autocast with loss scaling (CUDA) | fp32; --amp alone = bf16",
       cxxopts::value<std::string>()->default_value("auto")->implicit_value("bf16"))
      ("sync-bn", "distributed: BatchNorm statistics of the global batch (every norm layer, backbone and SSM head)")
      ("no-overlap", "distributed: all-reduce the gradients after backward instead of during it")
      ("no-progress", "no progress bar");
}

train::TrainOptions train_options(const cxxopts::ParseResult& args, std::string* precision_note) {
  const auto epochs = args["epochs"].as<int64_t>();
  TORCH_CHECK(epochs >= 1, "--epochs must be at least 1, got ", epochs);
  const auto lr = args["lr"].as<double>();
  TORCH_CHECK(lr >= 0, "--lr must be >= 0, got ", lr);

  const auto warmup = args["warmup-epochs"].as<double>();
  TORCH_CHECK(warmup >= 0 && warmup < static_cast<double>(epochs), "--warmup-epochs must be in [0, epochs), got ",
              warmup);
  TORCH_CHECK(!(args.count("channels-last") && args.count("no-channels-last")),
              "--channels-last and --no-channels-last contradict each other");
  std::vector<int64_t> milestones;
  if (args.count("milestones")) milestones = args["milestones"].as<std::vector<int64_t>>();
  for (auto m : milestones) TORCH_CHECK(m >= 1 && m <= epochs, "--milestones: ", m, " is outside 1..", epochs);
  const auto device = util::parse_device(args["device"].as<std::string>());
  std::string warning;
  const auto choice = train::resolve_precision(args["amp"].as<std::string>(), device, train::default_probe_cache(),
                                               &warning);
  const auto precision = choice.precision;
  TORCH_CHECK(precision != train::Precision::kFloat16 || device.is_cuda(),
              "--amp fp16 needs --device cuda (float16 with loss scaling is a GPU recipe); use --amp bf16 on the CPU");
  if (precision_note) *precision_note = warning.empty() ? "precision: " + choice.reason : warning;
  return train::TrainOptions()
      .epochs(epochs)
      .batch_size(data_options(args).batch_size())
      .lr(lr)
      .momentum(in_range(args, "momentum", 0.0, 1.0))
      .individual_reduction(nn::parse_individual_reduction(args["individual-reduction"].as<std::string>()))
      .nesterov(args.count("nesterov") > 0)
      .loss(nn::parse_loss_kind(args["loss"].as<std::string>()))
      .schedule(train::parse_schedule_kind(args["schedule"].as<std::string>()))
      .milestones(milestones)
      .warmup_epochs(warmup)
      .channels_last(args.count("no-channels-last") == 0)
      .precision(precision)
      .sync_batch_norm(args.count("sync-bn") > 0)
      .overlap_gradients(args.count("no-overlap") == 0);
}

void apply_weight_decay(const cxxopts::ParseResult& args, bool small_images, train::TrainOptions& train) {
  const auto text_value = args["weight-decay"].as<std::string>();
  if (text_value == "auto") {
    train.weight_decay(train.optimizer() == train::OptimizerKind::kAdamW ? train::kAdamWWeightDecay
                                                                         : train::default_weight_decay(small_images));
    return;
  }
  const auto wd = util::parse_number<double>(text_value);
  TORCH_CHECK(wd && *wd >= 0, "--weight-decay expects a number >= 0 or auto, got '", text_value, "'");
  train.weight_decay(*wd);
}

train::RunContext run_context(const cxxopts::ParseResult& args, const TrainDefaults& defaults) {
  const auto out = args.count("out")     ? args["out"].as<std::string>()
                   : defaults.fresh_out ? run::fresh_folder(defaults.out)
                                        : defaults.out;
  return train::RunContext()
      .out_dir(out)
      .device(util::parse_device(args["device"].as<std::string>()))
      .observer(args.count("no-progress") ? train::FitObserver() : train::progress_printer("train"));
}

void add_overwrite_option(cxxopts::Options& options) {
  options.add_options()("overwrite", "--out already holds results: move them to OUT.old-<time> and start afresh "
                                     "(without it such a folder is refused; nothing is deleted either way)");
}

std::unique_ptr<run::FolderClaim> claim_output(const cxxopts::ParseResult& args, const std::string& out,
                                               const std::string& command, bool continue_existing,
                                               const std::string& other_choice) {
  if (out.empty()) return nullptr;
  const bool overwrite = args.count("overwrite") > 0;
  const auto existing = continue_existing ? run::Existing::kContinue
                        : overwrite       ? run::Existing::kMoveAside
                                          : run::Existing::kRefuse;
  const auto choices = "Choose: " + (other_choice.empty() ? std::string() : other_choice + ", ") +
                       "write elsewhere with --out, or start afresh with --overwrite (moves the old results to " +
                       out + ".old-<time>)";
  auto claim = std::make_unique<run::FolderClaim>(out, "splitshare " + command, existing, choices);
  if (!claim->moved_to().empty()) {
    std::fprintf(stderr, "splitshare %s: --overwrite: the earlier results in %s moved to %s\n", command.c_str(),
                 out.c_str(), claim->moved_to().c_str());
  }
  return claim;
}

void add_finetune_options(cxxopts::Options& options) {
  options.add_options("Fine-tuning")
      ("init", "start from this checkpoint's weights (e.g. made by `splitshare import`)", cxxopts::value<std::string>())
      ("freeze-backbone", "train only the head; backbone weights and BatchNorm statistics stay as loaded")
      ("head-lr", "learning rate of the head (0 = --lr); follows the same schedule",
       number<double>()->default_value(text(train::TrainOptions().head_lr())));
}

void apply_finetune_options(const cxxopts::ParseResult& args, train::TrainOptions& train) {
  const auto head_lr = args["head-lr"].as<double>();
  TORCH_CHECK(head_lr >= 0, "--head-lr must be >= 0, got ", head_lr);
  train.head_lr(head_lr).freeze_backbone(args.count("freeze-backbone") > 0);
}

nn::Classifier init_model(const cxxopts::ParseResult& args, int64_t classes, int64_t channels,
                          nn::ClassifierOptions& model_options) {
  const auto path = args["init"].as<std::string>();
  const auto metadata = train::read_checkpoint_metadata(path);
  const auto& saved = metadata.model;
  model_options = saved;
  model_options.num_classes(classes);
  model_options.gate(std::nullopt);  // transfer_weights leaves a gate behind
  TORCH_CHECK(saved.in_channels() == channels, "--init ", path, " takes ", saved.in_channels(),
              "-channel images but the data has ", channels);
  const auto requested = args["arch"].as<std::string>();
  TORCH_CHECK(!args.count("arch") || requested == "auto" || requested == saved.arch(), "--arch ", requested,
              " disagrees with --init ", path, " (", saved.arch(), ")");
  TORCH_CHECK(!args.count("width") || args["width"].as<std::string>() == std::to_string(saved.width()),
              "--width ", args["width"].as<std::string>(), " disagrees with --init ", path, " (", saved.width(), ")");
  TORCH_CHECK(!args.count("stem") || nn::parse_stem(args["stem"].as<std::string>()) == saved.stem(), "--stem ",
              args["stem"].as<std::string>(), " disagrees with --init ", path, " (", nn::to_string(saved.stem()), ")");
  if (args.count("head") || args.count("splits") || args.count("kfc-k") || args.count("last-plain") ||
      args.count("ssm-norm")) {
    model_options.head(head_options(args));
  }
  auto model = nn::make_classifier(model_options);
  auto report = train::transfer_weights(*model, train::read_archive_tensors(path), path);
  for (const auto& notice : report.notices) std::fprintf(stderr, "notice: %s\n", notice.c_str());
  std::fprintf(stderr, "splitshare train: initialised from %s (%lld tensors, head %s)\n", path.c_str(),
               static_cast<long long>(report.copied), report.head_loaded ? "loaded" : "new");
  return model;
}

void add_thread_option(cxxopts::Options& options) {
  options.add_options()("threads", "compute threads (0 = all available cores)",
                        number<int>()->default_value("0"));
}

int configure_threads(const cxxopts::ParseResult& args, int64_t processes_per_machine) {
  const int requested = args["threads"].as<int>();
  TORCH_CHECK(requested >= 0, "--threads must be >= 0, got ", requested);
  if (requested == 0 && processes_per_machine > 1) {
    const int cores = util::configure_threads(0);
    return util::configure_threads(std::max<int>(1, cores / static_cast<int>(processes_per_machine)));
  }
  return util::configure_threads(requested);
}

void add_inference_precision_option(cxxopts::Options& options) {
  options.add_options()(
      "amp",
      "inference arithmetic: auto (bf16 where a short probe shows it faster, else fp32) | fp32 | bf16 for the "
      "backbone in bfloat16 (head and probabilities stay fp32); --amp alone = bf16",
      cxxopts::value<std::string>()->default_value("auto")->implicit_value("bf16"));
}

torch::Dtype inference_dtype(const cxxopts::ParseResult& args, const torch::Device& device) {
  std::string warning;
  const auto choice = train::resolve_precision(args["amp"].as<std::string>(), device, train::default_probe_cache(),
                                               &warning);
  TORCH_CHECK(choice.precision != train::Precision::kFloat16,
              "--amp fp16 is a training recipe for GPUs; inference takes --amp auto, fp32 or bf16");
  // Only what departs from plain fp32 is said: predict and eval print results, not set-up.
  if (!warning.empty()) std::fprintf(stderr, "%s\n", warning.c_str());
  if (warning.empty() && choice.precision != train::Precision::kFloat32) {
    std::fprintf(stderr, "precision: %s\n", choice.reason.c_str());
  }
  return train::dtype_of(choice.precision);
}

std::unique_ptr<nn::Predictor> inference_model(const cxxopts::ParseResult& args, const train::LoadedCheckpoint& loaded,
                                               torch::Dtype dtype, const char* command) {
  if (loaded.quantization) {
    const auto amp = args["amp"].as<std::string>();
    TORCH_CHECK(!args.count("amp") || amp == "auto", loaded.path, " is an int8 checkpoint (splitshare quantize): --amp ",
                amp, " applies to float checkpoints; leave --amp out");
    std::fprintf(stderr, "splitshare %s: %s runs in int8 (%zu activation ranges calibrated on %lld images)\n", command,
                 loaded.path.c_str(), loaded.quantization->ranges.size(),
                 static_cast<long long>(loaded.quantization->images));
  }
  return train::make_predictor(loaded, nn::InferenceOptions().dtype(dtype));
}

void add_tta_option(cxxopts::Options& options) {
  options.add_options()("tta", "test-time augmentation: none | flip (mean logits of each image and its mirror)",
                        cxxopts::value<std::string>()->default_value("none"));
}

bool tta_flip(const cxxopts::ParseResult& args) {
  const auto value = args["tta"].as<std::string>();
  TORCH_CHECK(value == "none" || value == "flip", "--tta: expected none or flip, got '", value, "'");
  return value == "flip";
}

namespace {

// The long name of the option whose value `text` is in `argv` ("--name text", "--name=text",
// "-x text" or "-xtext"); empty when none is found.
std::string option_given(const std::vector<std::string>& argv, const std::string& text) {
  for (size_t i = 1; i < argv.size(); ++i) {
    const auto& arg = argv[i];
    const auto equals = arg.find('=');
    if (arg.rfind("--", 0) == 0 && equals != std::string::npos && arg.substr(equals + 1) == text) {
      return arg.substr(2, equals - 2);
    }
    if (arg == text && argv[i - 1].size() > 1 && argv[i - 1][0] == '-') return argv[i - 1].substr(
        argv[i - 1].rfind("--", 0) == 0 ? 2 : 1);
    if (arg.size() > 2 && arg[0] == '-' && arg[1] != '-' && arg.substr(2) == text) return arg.substr(1, 1);
  }
  return {};
}

// The default --help shows for option `name` (long or short), or empty.
std::string default_of(const cxxopts::Options& options, const std::string& name) {
  for (const auto& group : options.groups()) {
    for (const auto& option : options.group_help(group).options) {
      const bool named = option.s == name || std::find(option.l.begin(), option.l.end(), name) != option.l.end();
      if (named && option.has_default) return option.default_value;
    }
  }
  return {};
}

}  // namespace

std::optional<cxxopts::ParseResult> parse(cxxopts::Options& options, int argc, char** argv) {
  options.add_options()("h,help", "show this help");
  // cxxopts needs two characters for a long option; the documented `--k K` is spelled
  // --kfc-k internally.
  std::vector<std::string> storage(argv, argv + argc);
  for (auto& arg : storage) {
    if (arg == "--k") arg = "--kfc-k";
    if (arg.rfind("--k=", 0) == 0) arg = "--kfc-k=" + arg.substr(4);
  }
  // `--amp` alone means bf16; cxxopts takes an optional value only as --amp=X, so the
  // documented `--amp fp16` is joined here.
  for (size_t i = 0; i + 1 < storage.size(); ++i) {
    const auto& next = storage[i + 1];
    if (storage[i] == "--amp" &&
        (next == "auto" || next == "bf16" || next == "fp16" || next == "fp32" || next == "off")) {
      storage[i] = "--amp=" + next;
      storage.erase(storage.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    }
  }
  std::vector<char*> rewritten;
  for (auto& arg : storage) rewritten.push_back(arg.data());
  std::optional<cxxopts::ParseResult> parsed;
  try {
    parsed = options.parse(static_cast<int>(rewritten.size()), rewritten.data());
  } catch (const NotANumber& e) {
    const auto name = option_given(std::vector<std::string>(argv, argv + argc), e.text());
    const auto example = default_of(options, name);
    TORCH_CHECK(false, name.empty() ? "an option" : "--" + name, ": '", e.text(), "' is not ", e.kind(),
                example.empty() ? std::string() : " (e.g. " + example + ", the default)");
  }
  auto& result = *parsed;
  if (result.count("help")) {
    std::cout << options.help() << std::endl;
    return std::nullopt;
  }
  TORCH_CHECK(result.unmatched().empty(), "unexpected argument '",
              result.unmatched().empty() ? "" : result.unmatched()[0], "' (see --help)");
  return result;
}

train::CheckpointMetadata fresh_metadata(const nn::ClassifierOptions& model, const data::DataBundle& bundle) {
  train::CheckpointMetadata m;
  m.model = model;
  m.classes = bundle.classes;
  m.preprocess = bundle.preprocess;
  return m;
}

}  // namespace splitshare::cli
