#include "splitshare/commands.h"

#include <splitshare/util/runtime.h>

#include <c10/util/Exception.h>
#include <cxxopts.hpp>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int, char**);
};

constexpr Command kCommands[] = {
    {"train", "train a classifier (default: small ResNet + SSM on Fashion-MNIST)", splitshare::cli::run_train},
    {"eval", "evaluate checkpoints: top-1/5, per-head, oracle, ensembles", splitshare::cli::run_eval},
    {"compare", "train head variants side by side (linear vs SSM, ablations, seeds)", splitshare::cli::run_compare},
    {"info", "parameter counts of a model, or a checkpoint's metadata", splitshare::cli::run_info},
    {"bench", "training and inference throughput against PyTorch eager", splitshare::cli::run_bench},
    {"import", "turn torchvision weights saved from Python into a checkpoint", splitshare::cli::run_import},
    {"pack", "pack a data set into WebDataset shards, decoded and resized once", splitshare::cli::run_pack},
    {"export", "write a checkpoint as an ONNX or TorchScript file that runs without splitshare",
     splitshare::cli::run_export},
    {"quantize", "int8 post-training quantization of a checkpoint, calibrated on images (eval, predict, export run it)",
     splitshare::cli::run_quantize},
    {"select", "train a head-selection gate on a trained SSM or k-FC model (towards the oracle)",
     splitshare::cli::run_select},
    {"predict", "classify image files with a checkpoint", splitshare::cli::run_predict},
    {"gradcam", "Grad-CAM of the whole model and of each split (paper Figure 2)", splitshare::cli::run_gradcam},
    {"report", "regenerate report.html of a train or compare folder", splitshare::cli::run_report},
    {"launch", "run a command as N local data-parallel processes (launch --nproc N -- train …)",
     splitshare::cli::run_launch},
    {"version", "what this build runs on: libtorch, CUDA, cuDNN, NCCL, Gloo, BLAS, threads",
     splitshare::cli::run_version},
};

void usage() {
  std::fprintf(stderr, "usage: splitshare <command> [options]   (splitshare <command> --help for details)\n\n");
  for (const auto& c : kCommands) std::fprintf(stderr, "  %-9s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  splitshare::util::configure_allocator();
  if (argc == 2 && !std::strcmp(argv[1], "--version")) return splitshare::cli::run_version(1, argv);
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  for (const auto& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    std::string program = std::string("splitshare ") + c.name;
    argv[1] = program.data();
    try {
      return c.run(argc - 1, argv + 1);
    } catch (const c10::Error& e) {
      std::fprintf(stderr, "splitshare %s: error: %s\n", c.name, e.what_without_backtrace());
    } catch (const cxxopts::exceptions::exception& e) {
      std::fprintf(stderr, "splitshare %s: error: %s (see --help)\n", c.name, e.what());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "splitshare %s: error: %s\n", c.name, e.what());
    }
    return 1;
  }
  std::fprintf(stderr, "splitshare: unknown command '%s'\n\n", argv[1]);
  usage();
  return 2;
}
