#include "splitshare/options.h"

#include <splitshare/data/augment.h>
#include <splitshare/data/image_folder.h>
#include <splitshare/checkpoint/checkpoint.h>

#include <cstdio>
#include <filesystem>
#include <map>

#include <string>
#include <vector>

namespace splitshare::cli {
namespace {

// "A,B" as two numbers; errors name the flag.
std::vector<double> pair_of(const cxxopts::ParseResult& args, const std::string& flag) {
  const auto values = args[flag].as<std::vector<double>>();
  TORCH_CHECK(values.size() == 2, "--", flag, " takes two comma-separated numbers, got ", values.size());
  return values;
}

}  // namespace

void add_recipe_options(cxxopts::Options& options) {
  const train::TrainOptions t;
  const data::DataOptions d;
  options.add_options("Optimizer")
      ("opt", "sgd | adamw | rmsprop (--lr 0 then means 0.1, 0.001 and 0.016/6 x batch/256 resp.; weight decay "
              "auto is 0.05 for adamw)", cxxopts::value<std::string>()->default_value(train::to_string(t.optimizer())))
      ("betas", "AdamW (beta1,beta2)", number<std::vector<double>>()->default_value("0.9,0.999"))
      ("eps", "AdamW / RMSprop eps", number<double>()->default_value(text(t.eps())))
      ("no-decay-bn-bias", "no weight decay on BatchNorm and bias parameters (default with adamw)")
      ("decay-bn-bias", "weight decay on every parameter, also with adamw")
      ("clip-grad", "clip the gradients' global L2 norm to NORM (0 = off)",
       number<double>()->default_value(text(t.clip_grad_norm())))
      ("accum-steps", "micro-batches per optimizer step (global batch = batch x N x processes)",
       number<int64_t>()->default_value(text(t.accum_steps())))
      ("ema", "keep an EMA of the weights with this decay, e.g. 0.9998 (0 = off)",
       number<double>()->default_value(text(t.ema_decay())))
      ("ema-best", "with --ema, best.pt holds: ema (chosen by the EMA's top-1) | raw",
       cxxopts::value<std::string>()->default_value("ema"));
  options.add_options("Regularisation")
      ("label-smoothing", "label smoothing of every loss term", number<double>()->default_value("0"))
      ("mixup", "mixup Beta(alpha, alpha) (0 = off)", number<double>()->default_value("0"))
      ("cutmix", "CutMix Beta(alpha, alpha) (0 = off; with --mixup, one of the two per batch)",
       number<double>()->default_value("0"))
      ("class-weights", "loss weights per class: auto (N / (K x n_class)) | FILE (K numbers)",
       cxxopts::value<std::string>())
      ("sampler", "random | balanced (with replacement, by inverse class frequency)",
       cxxopts::value<std::string>()->default_value("random"));
  options.add_options("Gate hold-out")
      ("holdout", "leave this stratified share of the training split out of training, for `select` to "
                  "train a head-selection gate on (0 = train on all of it)",
       number<double>()->default_value("0"))
      ("holdout-seed", "seed of that hold-out", number<uint64_t>()->default_value("0"));
  options.add_options("Photo data")
      ("val-split", "imagefolder:DIR without DIR/train, or wds: shards without val-*.tar: validation share per class",
       number<double>()->default_value(text(d.val_split())))
      ("class-map", "class order and names: one folder per line (FOLDER or FOLDER<TAB>NAME)",
       cxxopts::value<std::string>())
      ("shuffle", "wds: training order: index (a permutation of every sample; random reads) | shards "
                  "(stream each rank's share of shards, order shuffled per epoch, through a shuffle buffer; "
                  "sequential reads, for data larger than memory)",
       cxxopts::value<std::string>()->default_value("index"))
      ("shuffle-buffer", "with --shuffle shards: samples in the shuffle buffer",
       number<int64_t>()->default_value("1000"))
      ("auto-augment", "none | randaugment | trivialaugment | autoaugment (torchvision's)",
       cxxopts::value<std::string>()->default_value("none"))
      ("random-erase", "RandomErasing probability", number<double>()->default_value("0"))
      ("crop-scale", "RandomResizedCrop area range MIN,MAX (--augment torchvision)",
       number<std::vector<double>>()->default_value("0.08,1"))
      ("crop-ratio", "RandomResizedCrop aspect range MIN,MAX (--augment torchvision)",
       number<std::vector<double>>()->default_value("0.75,1.3333333333333333"));
}

void apply_recipe_options(const cxxopts::ParseResult& args, train::TrainOptions& train) {
  const auto kind = train::parse_optimizer_kind(args["opt"].as<std::string>());
  TORCH_CHECK(!(args.count("no-decay-bn-bias") && args.count("decay-bn-bias")),
              "--no-decay-bn-bias and --decay-bn-bias contradict each other");
  const bool no_decay = args.count("no-decay-bn-bias") ||
                        (!args.count("decay-bn-bias") && train::default_no_decay_bn_bias(kind));
  const auto smoothing = args["label-smoothing"].as<double>();
  TORCH_CHECK(smoothing >= 0 && smoothing < 1, "--label-smoothing must be in [0, 1), got ", smoothing);
  const auto ema = args["ema"].as<double>();
  TORCH_CHECK(ema >= 0 && ema < 1, "--ema must be in [0, 1) (e.g. 0.9998), got ", ema);
  const auto ema_best = args["ema-best"].as<std::string>();
  TORCH_CHECK(ema_best == "ema" || ema_best == "raw", "--ema-best: expected ema or raw, got '", ema_best, "'");
  TORCH_CHECK(args["clip-grad"].as<double>() >= 0, "--clip-grad must be >= 0, got ", args["clip-grad"].as<double>());
  TORCH_CHECK(args["accum-steps"].as<int64_t>() >= 1, "--accum-steps must be >= 1, got ",
              args["accum-steps"].as<int64_t>());
  TORCH_CHECK(args["mixup"].as<double>() >= 0 && args["cutmix"].as<double>() >= 0,
              "--mixup and --cutmix must be >= 0");
  TORCH_CHECK(!args.count("nesterov") || kind == train::OptimizerKind::kSgd, "--nesterov is an SGD option, not ",
              train::to_string(kind), "'s");
  const auto betas = pair_of(args, "betas");
  TORCH_CHECK(betas[0] >= 0 && betas[0] < 1 && betas[1] >= 0 && betas[1] < 1, "--betas: each must be in [0, 1), got ",
              betas[0], ",", betas[1]);
  TORCH_CHECK(args["eps"].as<double>() > 0, "--eps must be positive, got ", args["eps"].as<double>());
  train.optimizer(kind)
      .betas(betas)
      .eps(args["eps"].as<double>())
      .no_decay_bn_bias(no_decay)
      .label_smoothing(smoothing)
      .mixup(args["mixup"].as<double>())
      .cutmix(args["cutmix"].as<double>())
      .ema_decay(ema)
      .ema_best(ema_best == "ema")
      .clip_grad_norm(args["clip-grad"].as<double>())
      .accum_steps(args["accum-steps"].as<int64_t>());
}

void apply_data_recipe(const cxxopts::ParseResult& args, data::DataOptions& data) {
  const auto sampler = args["sampler"].as<std::string>();
  TORCH_CHECK(sampler == "random" || sampler == "balanced", "--sampler: expected random or balanced, got '", sampler,
              "'");
  const auto erase = args["random-erase"].as<double>();
  TORCH_CHECK(erase >= 0 && erase <= 1, "--random-erase is a probability in [0, 1], got ", erase);
  const auto split = args["val-split"].as<double>();
  TORCH_CHECK(split > 0 && split < 1, "--val-split must be a fraction in (0, 1), got ", split);
  const auto scale = pair_of(args, "crop-scale"), ratio = pair_of(args, "crop-ratio");
  TORCH_CHECK(scale[0] > 0 && scale[0] <= scale[1] && scale[1] <= 1, "--crop-scale needs 0 < MIN <= MAX <= 1, got ",
              scale[0], ",", scale[1]);
  TORCH_CHECK(ratio[0] > 0 && ratio[0] <= ratio[1], "--crop-ratio needs 0 < MIN <= MAX, got ", ratio[0], ",",
              ratio[1]);
  TORCH_CHECK(!(args.count("crop-scale") || args.count("crop-ratio")) ||
                  data.photo_recipe() == data::PhotoRecipe::kTorchvision,
              "--crop-scale and --crop-ratio set RandomResizedCrop: add --augment torchvision (the paper's recipe "
              "crops a fixed 224 window)");
  const auto shuffle = args["shuffle"].as<std::string>();
  TORCH_CHECK(shuffle == "index" || shuffle == "shards", "--shuffle: expected index or shards, got '", shuffle, "'");
  const auto buffer = args["shuffle-buffer"].as<int64_t>();
  TORCH_CHECK(buffer >= 1, "--shuffle-buffer must be >= 1, got ", buffer);
  TORCH_CHECK(shuffle == "shards" || !args.count("shuffle-buffer"), "--shuffle-buffer sets the buffer of "
              "--shuffle shards; add that (the default, --shuffle index, has no buffer)");
  data.shuffle_buffer(shuffle == "shards" ? buffer : 0);
  const auto holdout = args["holdout"].as<double>();
  TORCH_CHECK(holdout >= 0 && holdout < 1, "--holdout must be a fraction in [0, 1) (0 = none), got ", holdout);
  data.train_holdout(holdout).train_holdout_seed(args["holdout-seed"].as<uint64_t>());
  data.balanced_sampler(sampler == "balanced")
      .auto_augment(data::parse_auto_augment(args["auto-augment"].as<std::string>()))
      .random_erase(erase)
      .val_split(split)
      .crop_scale(scale)
      .crop_ratio(ratio);
  if (args.count("class-map")) data.class_map(args["class-map"].as<std::string>());
}

void apply_class_weights(const cxxopts::ParseResult& args, const data::DataBundle& bundle,
                         train::TrainOptions& train) {
  if (!args.count("class-weights")) return;
  const auto value = args["class-weights"].as<std::string>();
  const auto classes = static_cast<int64_t>(bundle.classes.size());
  train.class_weights(value == "auto" ? data::balanced_class_weights(bundle.class_counts)
                                      : data::read_class_weights(value, classes));
}

std::optional<RunHoldout> run_holdout(const std::string& checkpoint) {
  const auto metadata = train::read_checkpoint_metadata(checkpoint);
  const auto config = metadata.extra.value("config", nlohmann::json::object());
  std::map<std::string, std::string> given;
  for (const auto& arg : config.value("args", std::vector<std::string>())) {
    const auto equals = arg.find('=');
    if (arg.rfind("--", 0) == 0 && equals != std::string::npos) given[arg.substr(2, equals - 2)] = arg.substr(equals + 1);
  }
  if (!given.count("holdout") || std::stod(given["holdout"]) == 0) return std::nullopt;
  RunHoldout out;
  out.fraction = std::stod(given["holdout"]);
  if (given.count("holdout-seed")) out.seed = std::stoull(given["holdout-seed"]);
  if (given.count("limit-train")) out.limit_train = std::stoll(given["limit-train"]);
  return out;
}

void follow_run_data(const std::string& checkpoint, data::DataOptions& data) {
  const auto folder = std::filesystem::path(checkpoint).parent_path();
  const auto recorded = folder / data::kValFilesName;
  if (data.val_files().empty() && std::filesystem::exists(recorded)) {
    data.val_files(data::read_val_files(recorded.string()));
  }
  const auto metadata = train::read_checkpoint_metadata(checkpoint);
  const auto config = metadata.extra.value("config", nlohmann::json::object());
  const std::string flag = "--class-map=";
  for (const auto& arg : config.value("args", std::vector<std::string>())) {
    if (data.class_map().empty() && arg.rfind(flag, 0) == 0) data.class_map(arg.substr(flag.size()));
  }
}

data::DataSpec run_data_spec(const cxxopts::ParseResult& args, const std::string& checkpoint, const char* command) {
  if (args.count("data")) return data_spec(args);
  return data::parse_data_spec(recorded_data(checkpoint, command, "--data", args["data"].as<std::string>()));
}

std::string recorded_data(const std::string& checkpoint, const char* command, const char* flag,
                          const std::string& default_data) {
  const auto metadata = train::read_checkpoint_metadata(checkpoint);
  const auto config = metadata.extra.value("config", nlohmann::json::object());
  if (config.contains("data") && config.at("data").is_string()) {
    const auto text = config.at("data").get<std::string>();
    if (text != default_data) {  // the default needs no note
      std::fprintf(stderr, "splitshare %s: %s %s, the data %s was trained on (%s chooses other data)\n", command, flag,
                   text.c_str(), checkpoint.c_str(), flag);
    }
    return text;
  }
  const auto& p = metadata.preprocess;
  const bool fashion_mnist_like = p.channels == 1 && p.size.value_or(0) == 28 && !p.resize && !p.crop;
  TORCH_CHECK(fashion_mnist_like, checkpoint, " records no data set, and its model takes ", p.channels,
              "-channel images, not Fashion-MNIST's grey 28x28 ones: pass ", flag, " (e.g. ", flag,
              " imagefolder:DIR)");
  return default_data;
}

}  // namespace splitshare::cli
