// Nothing lost, nothing misread, seen where the user meets it (the command line): run folders
// that protect themselves (a used folder refused, one writer at a time, a fresh default),
// outputs that never overwrite an input and are whole or absent on every exit, image lists
// that name nothing refused, and numbers parsed whole.
#include <splitshare/run/folder.h>

#include "cli_support.h"
#include "image_writers.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace sr = splitshare::run;
namespace st = splitshare::testing;

using st::contains;
using st::expect_cli_refusal;
using st::run_cli;

const std::string kTinyRun = " --epochs 1 --batch-size 2 --width 4 --splits 2 --threads 1 --no-progress";

// " --data mnist:DIR" of a tiny data set made in `dir`.
std::string tiny_data(const st::TempDir& dir, uint8_t classes = 4) {
  st::write_tiny_mnist(dir.path() / "mnist", classes);
  return " --data mnist:" + dir.file("mnist");
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// An 8x8 grey PNG at `path`.
void write_png(const std::string& path, uint64_t seed) {
  st::write_file(path, st::encode_png(st::test_picture(1, 8, 8, seed)));
}

// A one-root image folder of two classes with `per_class` images each; `bad` adds an unreadable file.
std::string image_folder(const st::TempDir& dir, int per_class, bool bad) {
  for (const char* cls : {"cat", "dog"}) {
    fs::create_directories(dir.path() / "images" / cls);
    for (int i = 0; i < per_class; ++i) write_png(dir.file("images/" + std::string(cls) + "/" + std::to_string(i) + ".png"), i + 1);
  }
  if (bad) st::write_file(dir.file("images/dog/zz-broken.png"), "not a png");
  return dir.file("images");
}

}  // namespace

TEST(RunFolders, ASecondTrainIntoAUsedFolderIsRefusedAndOverwriteMovesTheOldRunAside) {
  st::TempDir dir;
  const auto data = tiny_data(dir), run = dir.file("run");
  auto first = run_cli("train" + data + kTinyRun + " --out " + run);
  ASSERT_EQ(first.status, 0) << first.output;
  const auto checkpoint = st::read_file(run + "/checkpoint.pt");
  expect_cli_refusal("train" + data + kTinyRun + " --seed 9 --out " + run,
                     {"output folder " + run + " already holds a run", "nothing was changed",
                      "splitshare train --resume " + run, "--overwrite"});
  EXPECT_EQ(st::read_file(run + "/checkpoint.pt"), checkpoint);
  const auto again = run_cli("train" + data + kTinyRun + " --seed 9 --overwrite --out " + run);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_TRUE(contains(again.output, "moved to " + run + ".old-")) << again.output;
  std::vector<std::string> aside;
  for (const auto& name : entries(dir.path().string())) {
    if (name.rfind("run.old-", 0) == 0) aside.push_back(name);
  }
  ASSERT_EQ(aside.size(), 1u);
  EXPECT_EQ(st::read_file(dir.file(aside[0] + "/checkpoint.pt")), checkpoint);
  EXPECT_NE(st::read_file(run + "/checkpoint.pt"), checkpoint);
}

TEST(RunFolders, TheDefaultOutputFolderIsANewOneForEachRun) {
  st::TempDir dir;
  const auto data = tiny_data(dir);
  const std::string cli = std::string(SPLITSHARE_CLI) + " train" + data + kTinyRun;
  std::string output;
  ASSERT_EQ(st::run_command("cd " + dir.path().string() + " && " + cli + " && " + cli, &output), 0) << output;
  const auto runs = entries(dir.file("runs"));
  ASSERT_EQ(runs.size(), 2u) << output;
  const std::regex name(R"(train-\d{4}-\d\d-\d\d-(\d+))");
  std::set<std::string> numbers;
  for (const auto& run : runs) {
    std::smatch match;
    ASSERT_TRUE(std::regex_match(run, match, name)) << run;
    numbers.insert(match[1]);
    EXPECT_TRUE(fs::exists(dir.file("runs/" + run + "/checkpoint.pt"))) << run;
  }
  EXPECT_EQ(numbers, (std::set<std::string>{"1", "2"}));
}

TEST(RunFolders, ASecondWriterIsRefusedAtOnceNamingTheHolder) {
  st::TempDir dir;
  const auto data = tiny_data(dir), run = dir.file("run");
  {
    const sr::FolderClaim holder(run, "the test");
    const auto pid = " (pid " + std::to_string(getpid()) + " on host ";
    expect_cli_refusal("train" + data + kTinyRun + " --out " + run, {"output folder " + run + " is in use by the test" + pid});
    expect_cli_refusal("compare --variants linear" + data + kTinyRun + " --out " + run, {"is in use by the test" + pid});
    EXPECT_EQ(entries(run), std::vector<std::string>{".lock"});  // nothing written by the refused commands
  }
  const auto after = run_cli("train" + data + kTinyRun + " --out " + run);
  EXPECT_EQ(after.status, 0) << after.output;
}

TEST(RunFolders, CompareReusesOnlyRunsOfTheSameSettingsAndSaysSo) {
  st::TempDir dir;
  const auto data = tiny_data(dir), out = " --variants linear --out " + dir.file("c");
  const auto first = run_cli("compare" + data + kTinyRun + out);
  ASSERT_EQ(first.status, 0) << first.output;
  const auto again = run_cli("compare" + data + kTinyRun + out);
  EXPECT_EQ(again.status, 0) << again.output;
  EXPECT_TRUE(contains(again.output, "holds earlier runs")) << again.output;
  EXPECT_TRUE(contains(again.output, "finished earlier, reusing")) << again.output;
  expect_cli_refusal("compare" + data + kTinyRun + " --lr 0.05" + out,
                     {"trained with other settings than this compare asks for", "train.lr"});
  expect_cli_refusal("compare" + data + kTinyRun + " --limit-train 3" + out, {"data_settings.limit_train: 0 in the run, 3"});
}

TEST(RunFolders, ARefusedRunLeavesNothingBehind) {
  st::TempDir dir;
  const auto images = image_folder(dir, 6, /*bad=*/true);
  // --strict stops at the unreadable image; the folder train made for the run goes again.
  expect_cli_refusal("train --data imagefolder:" + images + kTinyRun + " --strict --out " + dir.file("new"),
                     {"zz-broken.png"});
  EXPECT_FALSE(fs::exists(dir.file("new")));
  // A folder the user made stays, without the validation list the refused run wrote.
  fs::create_directories(dir.file("mine"));
  st::write_file(dir.file("mine/notes.txt"), "mine");
  expect_cli_refusal("train --data imagefolder:" + images + kTinyRun + " --strict --out " + dir.file("mine"),
                     {"zz-broken.png"});
  EXPECT_EQ(entries(dir.file("mine")), std::vector<std::string>{"notes.txt"});
  // No full batch (the photo pipeline drops a last short batch): refused before training, nothing left.
  fs::remove(dir.file("images/dog/zz-broken.png"));
  expect_cli_refusal("train --data imagefolder:" + images + kTinyRun + " --image-size 8 --batch-size 64 --out " +
                         dir.file("big"),
                     {"no full batch"});
  EXPECT_FALSE(fs::exists(dir.file("big")));
}

TEST(Outputs, PredictNeverWritesOverItsInputs) {
  st::TempDir dir;
  const auto checkpoint = st::tiny_checkpoint(dir, "model.pt");
  write_png(dir.file("a.png"), 1);
  const auto before = st::read_file(checkpoint), image = st::read_file(dir.file("a.png"));
  fs::create_symlink(checkpoint, dir.file("link.pt"));
  const auto predict = "predict --no-progress --checkpoint " + checkpoint + " " + dir.file("a.png");
  expect_cli_refusal(predict + " --dump-inputs " + checkpoint, {"--dump-inputs " + checkpoint + " is the input"});
  expect_cli_refusal(predict + " --dump-inputs " + dir.file("link.pt"), {"is the input " + checkpoint});
  expect_cli_refusal(predict + " --dump-inputs " + dir.path().string() + "/../" + dir.path().filename().string() +
                         "/a.png", {"is the input " + dir.file("a.png")});
  expect_cli_refusal(predict + " --output " + dir.file("a.png"), {"--output"});
  EXPECT_EQ(st::read_file(checkpoint), before);
  EXPECT_EQ(st::read_file(dir.file("a.png")), image);
  const auto fine = run_cli(predict + " --dump-inputs " + dir.file("inputs.pt"));
  EXPECT_EQ(fine.status, 0) << fine.output;
  EXPECT_TRUE(fs::exists(dir.file("inputs.pt")));
}

TEST(Outputs, StreamedPredictionsAreWholeOrAbsent) {
  st::TempDir dir;
  const auto checkpoint = st::tiny_checkpoint(dir, "model.pt");
  fs::create_directories(dir.file("many"));
  for (int i = 0; i < 400; ++i) write_png(dir.file("many/" + std::to_string(1000 + i) + ".png"), i + 1);
  st::write_file(dir.file("many/zz-broken.png"), "not a png");
  const auto predict = std::string(SPLITSHARE_CLI) + " predict --no-progress --batch-size 1 --workers 0 --checkpoint " +
                       checkpoint + " " + dir.file("many");
  std::string output;
  EXPECT_EQ(st::run_command(predict + " --strict --output " + dir.file("p.csv"), &output), 1) << output;
  EXPECT_TRUE(contains(output, "zz-broken.png")) << output;
  EXPECT_EQ(entries(dir.path().string()), (std::vector<std::string>{"many", "model.pt"}));
  // SIGTERM once rows are being written: no file, no .tmp, status 143.
  const auto script = predict + " --output " + dir.file("q.jsonl") + " & pid=$!; while [ ! -s " + dir.file("q.jsonl.tmp") +
                      " ]; do sleep 0.01; done; kill -TERM $pid; wait $pid";
  output.clear();
  const int status = st::run_command("bash -c '" + script + "'", &output);
  EXPECT_EQ(status, 143) << output;
  EXPECT_TRUE(contains(output, "no output written")) << output;
  EXPECT_EQ(entries(dir.path().string()), (std::vector<std::string>{"many", "model.pt"}));
  // A folder that does not exist is named as the user gave it, never as our .tmp.
  expect_cli_refusal("predict --checkpoint " + checkpoint + " " + dir.file("many/1000.png") + " --output " +
                         dir.file("nodir/sub/p.csv"),
                     {"--output " + dir.file("nodir/sub/p.csv") + ": cannot create the file",
                      "the folder " + dir.file("nodir/sub") + " does not exist"});
}

TEST(Outputs, ImageListsThatNameNothingAreRefused) {
  st::TempDir dir;
  const auto checkpoint = st::tiny_checkpoint(dir, "model.pt");
  fs::create_directories(dir.file("folder"));
  write_png(dir.file("folder/a.png"), 1);
  st::write_file(dir.file("empty.txt"), "# nothing here\n\n");
  st::write_file(dir.file("list.txt"), dir.file("folder/a.png") + "\n# a comment\nmissing.png\n");
  const auto predict = "predict --no-progress --checkpoint " + checkpoint + " ";
  expect_cli_refusal(predict + "@" + dir.file("folder"), {"@" + dir.file("folder") + " is a folder, not a list file"});
  expect_cli_refusal(predict + "@" + dir.file("empty.txt"), {"the list @" + dir.file("empty.txt") + " names no images"});
  expect_cli_refusal(predict + "@" + dir.file("list.txt"),
                     {"list " + dir.file("list.txt") + " line 3: no such image file or folder: missing.png",
                      "taken from the current folder"});
  expect_cli_refusal(predict + "@" + dir.file("absent.txt"), {"no such list of images: @" + dir.file("absent.txt")});
  // A list inside a list: the error names both lists and both lines.
  st::write_file(dir.file("outer.txt"), "# first\n@" + dir.file("list.txt") + "\n");
  expect_cli_refusal(predict + "@" + dir.file("outer.txt"),
                     {"list " + dir.file("outer.txt") + " line 2: list " + dir.file("list.txt") +
                      " line 3: no such image file or folder: missing.png"});
}

TEST(Options, NumbersAreParsedWholeAndErrorsNameTheOption) {
  for (const auto& [args, phrase] : std::vector<std::pair<std::string, std::string>>{
           {"train --lr 0,5", "--lr: '0,5' is not a number"},
           {"train --lr 0x10", "--lr: '0x10' is not a number"},
           {"train --lr=0.2abc", "--lr: '0.2abc' is not a number"},
           {"train --lr abc", "--lr: 'abc' is not a number"},
           {"train --mixup 0.2.3", "--mixup: '0.2.3' is not a number"},
           {"train --label-smoothing 0.1%", "--label-smoothing: '0.1%' is not a number"},
           {"train --val-split 0.1x", "--val-split: '0.1x' is not a number"},
           {"train --val-split nan", "--val-split: 'nan' is not a number"},
           {"train --lr inf", "--lr: 'inf' is not a number"},
           {"train --batch-size 64k", "--batch-size: '64k' is not a whole number"},
           {"train --seed -1", "--seed: '-1' is not a whole number >= 0"},
           {"train --k 3x", "--k: '3x' is not a whole number"},
           {"train --milestones 3,x", "--milestones: '3,x' is not a comma-separated list of whole numbers"},
           {"select --gate-lr 1e-2e", "--gate-lr: '1e-2e' is not a number"},
           // Numbers outside the option's range name it, the value and the range.
           {"train --momentum 1.5", "--momentum: 1.5 is outside its range [0, 1]"},
           {"train --opt adamw --betas 0.9,1.5", "--betas: each must be in [0, 1), got 0.9,1.5"},
           {"train --eps 0", "--eps must be positive"},
           {"launch --port 70000 -- train", "--port: 70000 is outside its range [0, 65535]"},
           {"bench --repeats -2", "--repeats and --steps must be >= 0"},
       }) {
    expect_cli_refusal(args, {phrase});
  }
}

TEST(Options, EveryNumericOptionOfEveryCommandRefusesTrailingGarbage) {
  // Every option whose --help default is a number, for every command: the sweep catches an
  // option declared with a parser that reads a prefix.
  const std::regex option(R"(^\s+(?:-\w, )?--([\w-]+) arg .*\(default:\s+(-?[0-9][0-9.e+-]*)\)\s*$)");
  int checked = 0;
  for (const char* command : {"train", "eval", "compare", "info", "bench", "import", "export", "select", "predict",
                              "gradcam", "launch"}) {
    const auto help = run_cli(std::string(command) + " --help");
    ASSERT_EQ(help.status, 0) << help.output;
    // One entry per option: cxxopts wraps a long description onto indented lines of its own.
    std::vector<std::string> options;
    std::istringstream lines(help.output);
    for (std::string line; std::getline(lines, line);) {
      const auto text = line.find_first_not_of(' ');
      if (text != std::string::npos && line[text] == '-' && text < 8) {
        options.push_back(line);
      } else if (!options.empty() && text != std::string::npos && text >= 8) {
        options.back() += " " + line.substr(text);
      }
    }
    for (const auto& entry : options) {
      std::smatch match;
      if (!std::regex_match(entry, match, option)) continue;
      expect_cli_refusal(std::string(command) + " --" + match[1].str() + " " + match[2].str() + "x",
                         {"--" + match[1].str() + ": '" + match[2].str() + "x' is not "});
      ++checked;
    }
  }
  EXPECT_GE(checked, 90);  // 93 when written
}

TEST(Options, CheckpointPathsMayHoldCommas) {
  st::TempDir dir;
  fs::create_directories(dir.file("run ü,x"));
  auto metadata = st::tiny_metadata();  // mnist:DIR has MNIST's ten classes
  metadata.model.num_classes(10);
  metadata.classes = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  const auto checkpoint = st::tiny_checkpoint(dir, "run ü,x/best.pt", metadata);
  const auto data = tiny_data(dir, 3);
  const auto one = run_cli("eval --checkpoint '" + checkpoint + "'" + data + " --threads 1");
  EXPECT_EQ(one.status, 0) << one.output;
  const auto two = run_cli("eval --checkpoint '" + checkpoint + "' --checkpoint '" + checkpoint + "'" + data +
                           " --threads 1");
  EXPECT_EQ(two.status, 0) << two.output;
  EXPECT_TRUE(contains(two.output, "ensemble")) << two.output;
  expect_cli_refusal("eval --checkpoint " + dir.file("a.pt") + "," + dir.file("b.pt") + data,
                     {"repeat --checkpoint for each model"});
}

TEST(Messages, ThePixelLimitIsSetByAnEnvironmentVariableTheRefusalNames) {
  st::TempDir dir;
  const auto checkpoint = st::tiny_checkpoint(dir, "model.pt");
  write_png(dir.file("a.png"), 1);
  const auto predict = " predict --no-progress --checkpoint " + checkpoint + " " + dir.file("a.png");
  std::string output;
  const auto low = st::run_command("SPLITSHARE_MAX_PIXELS=63 " + std::string(SPLITSHARE_CLI) + predict + " --strict", &output);
  EXPECT_EQ(low, 1) << output;
  EXPECT_TRUE(contains(output, "8x8 = 64 pixels, more than the limit of 63")) << output;
  EXPECT_TRUE(contains(output, "set the environment variable SPLITSHARE_MAX_PIXELS=64 or more")) << output;
  output.clear();
  EXPECT_EQ(st::run_command("SPLITSHARE_MAX_PIXELS=64 " + std::string(SPLITSHARE_CLI) + predict, &output), 0) << output;
  output.clear();
  EXPECT_EQ(st::run_command("SPLITSHARE_MAX_PIXELS=1e9 " + std::string(SPLITSHARE_CLI) + predict, &output), 1) << output;
  EXPECT_TRUE(contains(output, "SPLITSHARE_MAX_PIXELS='1e9' is not a whole number >= 1")) << output;
}

TEST(Messages, AnEditedCheckpointSizeIsRefusedByFieldBeforeAnyAllocation) {
  st::TempDir dir;
  auto wide = st::tiny_metadata();
  wide.model.width(1000000);
  auto big = st::tiny_metadata();
  big.preprocess.size = 100000;
  write_png(dir.file("a.png"), 1);
  // A model of a sane size saved under metadata that says otherwise, as an edited file would.
  auto model = splitshare::nn::make_classifier(st::tiny_metadata().model);
  for (const auto& [metadata, phrase] : std::vector<std::pair<splitshare::train::CheckpointMetadata, std::string>>{
           {wide, "width 1000000 (must be 1..4096)"},
           {big, "'preprocess.size' is 100000 pixels, more than the 16384"}}) {
    const auto edited = dir.file("edited.pt");
    splitshare::train::save_checkpoint(*model, metadata, edited);
    expect_cli_refusal("info --checkpoint " + edited, {phrase});
    expect_cli_refusal("predict --checkpoint " + edited + " " + dir.file("a.png"), {phrase});
  }
}

TEST(Messages, CommandsSayWhatToChange) {
  st::TempDir dir;
  const auto checkpoint = st::tiny_checkpoint(dir, "model.pt");
  st::write_file(dir.file("afile"), "x");
  expect_cli_refusal("select --checkpoint " + checkpoint + " --out " + dir.file("afile"),
                     {"output folder " + dir.file("afile") + " is a file, not a folder; choose another --out"});
  expect_cli_refusal("gradcam --checkpoint " + checkpoint + " --data fashion-mnist --out " + dir.file("afile"),
                     {"is a file, not a folder"});
  // A model of 8-px images that records no data set: select and eval do not fall back to Fashion-MNIST.
  expect_cli_refusal("select --checkpoint " + checkpoint + " --out " + dir.file("gate"),
                     {checkpoint + " records no data set", "pass --data"});
  expect_cli_refusal("eval --checkpoint " + checkpoint, {checkpoint + " records no data set", "pass --data"});
  EXPECT_FALSE(fs::exists(dir.file("gate")));
}
