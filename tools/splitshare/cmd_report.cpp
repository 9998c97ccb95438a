#include "splitshare/commands.h"
#include "splitshare/options.h"

#include <splitshare/report/html.h>

#include <cstdio>

namespace splitshare::cli {

int run_report(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "Regenerate DIR/report.html from the metrics saved by `train` (metrics.jsonl, "
                           "summary.json, gradcam.png) or `compare` (compare.json and its runs)");
  options.positional_help("DIR");
  options.add_options()("dir", "a train or compare output folder", cxxopts::value<std::string>());
  options.parse_positional({"dir"});
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  TORCH_CHECK(args->count("dir"), "give the output folder of a train or compare run: splitshare report DIR");
  std::printf("%s\n", report::write_report((*args)["dir"].as<std::string>()).c_str());
  return 0;
}

}  // namespace splitshare::cli
