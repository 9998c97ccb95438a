#include "splitshare/commands.h"
#include "splitshare/options.h"

#include <splitshare/data/image_folder.h>
#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/train/select.h>
#include <splitshare/util/files.h>

#include <cstdio>
#include <filesystem>
#include <optional>

namespace splitshare::cli {
namespace {

void print_report(const char* split, const train::SelectionReport& r) {
  std::printf("%-10s %7lld  mean %6.2f%%  most confident %6.2f%%  confidence-weighted %6.2f%%  gate %6.2f%%  oracle "
              "%6.2f%%  gap closed %+.1f%%\n",
              split, static_cast<long long>(r.samples), 100 * r.combined, 100 * r.most_confident,
              100 * r.confidence_weighted, 100 * r.gate, 100 * r.oracle, 100 * r.gap_closed());
}


// The gate and its hold-out as the flags say; after `train --holdout`, the run's hold-out
// (fraction, seed and --limit-train, which `data` takes), and another one refused by name.
train::SelectOptions select_options(const cxxopts::ParseResult& args, const std::string& checkpoint,
                                    data::DataOptions& data) {
  const auto recorded = run_holdout(checkpoint);
  auto select = train::SelectOptions()
                    .holdout(args["holdout"].as<double>())
                    .holdout_seed(args["holdout-seed"].as<uint64_t>())
                    .model_saw_holdout(!recorded)
                    .input(nn::parse_gate_input(args["gate-input"].as<std::string>()))
                    .hidden(in_range<int64_t>(args, "gate-hidden", 0, 1 << 20))
                    .hard(args.count("hard") > 0)
                    .seed(args["gate-seed"].as<uint64_t>())
                    .train(train::GateTrainOptions()
                               .epochs(in_range<int64_t>(args, "gate-epochs", 1, 1 << 20))
                               .lr(in_range(args, "gate-lr", 1e-12, 1e3)));
  if (!recorded) return select;
  TORCH_CHECK(!args.count("holdout") || select.holdout() == recorded->fraction, "--holdout ", select.holdout(), ": ",
              checkpoint, " was trained without a hold-out of ", recorded->fraction,
              " (train --holdout), which select uses; leave --holdout out");
  TORCH_CHECK(!args.count("holdout-seed") || select.holdout_seed() == recorded->seed, "--holdout-seed ",
              select.holdout_seed(), ": ", checkpoint, "'s hold-out was drawn with seed ", recorded->seed,
              "; leave --holdout-seed out");
  TORCH_CHECK(!args.count("limit-train") || data.limit_train() == recorded->limit_train, "--limit-train ",
              data.limit_train(), ": ", checkpoint, "'s hold-out was drawn from its --limit-train ",
              recorded->limit_train, "; leave --limit-train out");
  data.limit_train(recorded->limit_train);
  return select.holdout(recorded->fraction).holdout_seed(recorded->seed);
}

// OUT/gated.pt, select.json, holdout.txt and (a split image folder) the run's val_files.txt.
void write_outputs(const std::string& out, train::LoadedCheckpoint& loaded, const data::DataBundle& bundle,
                   const train::SelectResult& result, const nlohmann::json& record) {
  std::filesystem::create_directories(out);
  train::save_gated_checkpoint(*loaded.model, loaded.metadata, result.gate, record, out + "/gated.pt");
  util::write_file_atomic(out + "/select.json", record.dump(2) + "\n");
  util::write_file_atomic(out + "/holdout.txt", train::holdout_listing(bundle, result.holdout_indices));
  // eval and gradcam on OUT/gated.pt then see the run's validation split.
  if (!bundle.val_files.empty()) data::write_val_files(bundle.val_files, out + "/" + data::kValFilesName);
}

}  // namespace

int run_select(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "Train a head-selection gate on a trained, frozen SSM or k-FC model (Section 6's open\n"
                           "question): per sample and without the label, weigh the sub-classifiers towards the\n"
                           "oracle. Trained on a stratified hold-out of the training split (the one the model\n"
                           "was trained without, after `train --holdout`), reported on the validation split\n"
                           "next to the mean, the two label-free rules and the oracle.\n"
                           "Writes OUT/gated.pt (the checkpoint with the gate: eval, predict and export use it),\n"
                           "OUT/select.json, OUT/holdout.txt (the hold-out's samples) and, for a split image\n"
                           "folder, the run's OUT/val_files.txt.");
  add_data_options(options);
  const train::SelectOptions defaults;
  const train::GateTrainOptions train_defaults;
  options.add_options("Gate")
      ("checkpoint", "trained model (best.pt, checkpoint.pt)", cxxopts::value<std::string>())
      ("out", "folder for gated.pt, select.json and holdout.txt", cxxopts::value<std::string>())
      ("holdout", "share of the training split the gate trains on", number<double>()->default_value(text(defaults.holdout())))
      ("holdout-seed", "seed of the hold-out draw", number<uint64_t>()->default_value("0"))
      ("gate-input", "features | logits | both", cxxopts::value<std::string>()->default_value("both"))
      ("gate-hidden", "0 = linear gate; N = one hidden layer of N units", number<int64_t>()->default_value("0"))
      ("hard", "choose one head per sample (trained soft, one-hot at evaluation)")
      ("gate-epochs", "epochs over the hold-out", number<int64_t>()->default_value(text(train_defaults.epochs())))
      ("gate-lr", "Adam learning rate", number<double>()->default_value(text(train_defaults.lr())))
      ("gate-seed", "seed of the gate's initialisation and mini-batches", number<uint64_t>()->default_value("0"))
      ("json", "print select.json");
  add_thread_option(options);
  add_overwrite_option(options);
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  TORCH_CHECK(args->count("checkpoint"), "--checkpoint is required");
  TORCH_CHECK(args->count("out"), "--out is required");
  configure_threads(*args);
  const auto checkpoint = (*args)["checkpoint"].as<std::string>();
  const auto out = (*args)["out"].as<std::string>();
  const auto claim = claim_output(*args, out, "select", /*continue_existing=*/false);
  auto loaded = train::load_checkpoint(checkpoint);
  // Every training sample once, in order: the hold-out is drawn from all of them.
  auto data_opts = data_options(*args).augment(false).train_in_order(true);
  follow_run_data(checkpoint, data_opts);
  const auto select = select_options(*args, checkpoint, data_opts);
  auto bundle = data::open_data(run_data_spec(*args, checkpoint, "select"),
                                data::evaluation_options(data_opts, loaded.metadata.preprocess));
  const auto result = train::select_gate(*loaded.model, bundle, select);
  const auto record = train::select_record(checkpoint, select, result);
  write_outputs(out, loaded, bundle, result, record);
  if (args->count("json")) {
    std::printf("%s\n", record.dump(2).c_str());
  } else {
    print_report("hold-out", result.holdout);
    print_report("validation", result.validation);
    if (!select.model_saw_holdout()) {
      std::printf("the model was trained without this hold-out (train --holdout %g)\n", select.holdout());
    } else {
      std::printf("note: the model was trained on this hold-out too, so its heads are more often right there than on "
                  "new data; `train --holdout F` leaves it out\n");
    }
  }
  return 0;
}

}  // namespace splitshare::cli
