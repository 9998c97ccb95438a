#include "splitshare/commands.h"
#include "splitshare/options.h"

#include <splitshare/util/build_info.h>

#include <cstdio>

namespace splitshare::cli {

int run_version(int argc, char** argv) {
  cxxopts::Options options(argv[0], "What this splitshare was built with: libtorch, CUDA, cuDNN, NCCL, Gloo, BLAS, threads");
  options.add_options()("json", "print JSON");
  add_thread_option(options);
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  configure_threads(*args);
  const auto info = train::build_info();
  if (args->count("json")) {
    std::printf("%s\n", train::to_json(info).dump(2).c_str());
  } else {
    std::printf("%s\n", train::to_string(info).c_str());
  }
  return 0;
}

}  // namespace splitshare::cli
