#pragma once

namespace splitshare::cli {

/// Each subcommand: argv[0] is "splitshare <name>"; returns the exit status.
int run_train(int argc, char** argv);
int run_eval(int argc, char** argv);
int run_info(int argc, char** argv);
int run_compare(int argc, char** argv);
int run_bench(int argc, char** argv);
int run_import(int argc, char** argv);
int run_pack(int argc, char** argv);
int run_export(int argc, char** argv);
int run_select(int argc, char** argv);
int run_predict(int argc, char** argv);
int run_quantize(int argc, char** argv);
int run_gradcam(int argc, char** argv);
int run_report(int argc, char** argv);
int run_launch(int argc, char** argv);
int run_version(int argc, char** argv);

}  // namespace splitshare::cli
