#include "splitshare/commands.h"
#include "splitshare/common.h"

#include <splitshare/train/compare.h>

#include <cstdio>

namespace splitshare::cli {

int run_compare(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "Train head variants with the same data, seed and schedule and tabulate them "
                           "(writes OUT/compare.json and one folder per run)");
  options.add_options()
      ("variants", "comma-separated: linear, ssm, ssm-individual, ssm-lastplain, kfc2, kfc3, …",
       cxxopts::value<std::vector<std::string>>()->default_value("linear,ssm"))
      ("seeds", "seeds per variant (mean ± std; the first two are also ensembled)",
       cxxopts::value<int64_t>()->default_value("1"))
      ("json", "print compare.json instead of the table");
  add_model_options(options);
  add_data_options(options);
  add_train_options(options, "runs/compare");
  add_thread_option(options);
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  configure_threads(*args);
  auto train = train_options(*args);
  auto data_opts = data_options(*args);
  auto spec = data_spec(*args);
  // Class count, channels and image kind come from the data; open it once to learn them.
  auto probe = data::open_data(spec, data::DataOptions(data_opts).limit_train(1).limit_val(1));
  auto model = model_options(*args, static_cast<int64_t>(probe.classes.size()), probe.preprocess.channels,
                             probe.small_images);
  auto compare = train::CompareOptions()
                     .variants((*args)["variants"].as<std::vector<std::string>>())
                     .seeds((*args)["seeds"].as<int64_t>())
                     .seed(data_opts.seed())
                     .splits(model.head().splits())
                     .out_dir(train.out_dir());
  auto results = train::run_compare(compare, model, spec, data_opts, train);
  if (args->count("json")) {
    std::printf("%s\n", train::to_json(results).dump(2).c_str());
  } else {
    std::printf("\n%s + heads on %s, %lld epochs, seeds %llu..%llu\n%s\nwritten to %s/compare.json\n",
                model.arch().c_str(), (*args)["data"].as<std::string>().c_str(),
                static_cast<long long>(train.epochs()), static_cast<unsigned long long>(data_opts.seed()),
                static_cast<unsigned long long>(data_opts.seed() + compare.seeds() - 1),
                train::format_compare_table(results).c_str(), train.out_dir().c_str());
  }
  return 0;
}

}  // namespace splitshare::cli
