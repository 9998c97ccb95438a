#include "splitshare/commands.h"
#include "splitshare/options.h"

#include <splitshare/distributed/distributed.h>

#include <cstring>

namespace splitshare::cli {

int run_launch(int argc, char** argv) {
  // Everything after "--" is the command each rank runs.
  int split = argc;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) {
      split = i;
      break;
    }
  }
  cxxopts::Options options(argv[0], "Start N local processes of `splitshare <command>` with torchrun's environment "
                                    "(usage: splitshare launch --nproc 2 -- train --epochs 1)");
  options.add_options()
      ("nproc", "processes on this machine", number<int64_t>()->default_value("2"))
      ("port", "rendezvous port on 127.0.0.1 (0 = a free one)", number<int64_t>()->default_value("0"));
  auto args = parse(options, split, argv);
  if (!args) return 0;
  TORCH_CHECK(split + 1 < argc, "launch: give the command after --, e.g. launch --nproc 2 -- train --epochs 1");
  std::vector<std::string> command{"splitshare"};
  for (int i = split + 1; i < argc; ++i) command.emplace_back(argv[i]);
  return train::launch_local((*args)["nproc"].as<int64_t>(), command, in_range<int64_t>(*args, "port", 0, 65535));
}

}  // namespace splitshare::cli
