// What happens when things go wrong during training: SIGTERM/SIGINT, kill -9, a full disk
// (RLIMIT_FSIZE), an unusable output folder, a NaN loss. Each must cost at most the steps
// since the last checkpoint, and the message must say what happened and how to continue.
#include <splitshare/data/datasets.h>
#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/train/fit.h>
#include <splitshare/util/files.h>

#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <csignal>

#include "support.h"

namespace sd = splitshare::data;
namespace sn = splitshare::nn;
namespace tr = splitshare::train;
namespace su = splitshare::util;
using splitshare::testing::expect_error;
using splitshare::testing::read_file;
using splitshare::testing::run_command;
using splitshare::testing::TempDir;
using splitshare::testing::write_file;

namespace {

const std::string kCli = SPLITSHARE_CLI;
const std::string kTiny = " --limit-train 320 --limit-val 32 --batch-size 16 --width 4 --splits 2 --threads 1"
                          " --no-progress --seed 5";

bool have_fashion_mnist() { return std::filesystem::exists(sd::default_fashion_mnist_dir()); }

// Lowers the file size limit of this process while it exists (SIGXFSZ ignored, so
// writes past it fail with EFBIG as on a full disk).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    previous_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lowered = saved_;
    lowered.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &lowered);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, previous_);
  }

 private:
  rlimit saved_{};
  void (*previous_)(int) = nullptr;
};

// A stream that turns the images of one step into NaN.
class PoisonedStream final : public sd::BatchStream {
 public:
  PoisonedStream(std::unique_ptr<sd::BatchStream> inner, int64_t epoch, int64_t step)
      : inner_(std::move(inner)), epoch_(epoch), step_(step) {}
  int64_t size() const override { return inner_->size(); }
  int64_t batches_per_epoch() const override { return inner_->batches_per_epoch(); }
  void reset(int64_t epoch) override { reset_at(epoch, 0); }
  void reset_at(int64_t epoch, int64_t consumed) override {
    inner_->reset_at(epoch, consumed);
    epoch_now_ = epoch;
    step_now_ = 0;
  }
  std::optional<sd::Batch> next() override {
    auto batch = inner_->next();
    if (batch && epoch_now_ == epoch_ && step_now_++ == step_) batch->images.fill_(NAN);
    return batch;
  }

 private:
  std::unique_ptr<sd::BatchStream> inner_;
  int64_t epoch_, step_, epoch_now_ = 0, step_now_ = 0;
};

}  // namespace

TEST(Failures, WritesFailClearlyAndKeepThePreviousFile) {
  TempDir dir;
  const auto path = dir.file("checkpoint.pt");
  su::write_file_atomic(path, "previous");
  {
    FileSizeLimit limit(1000);
    auto message = expect_error([&] { su::write_file_atomic(path, std::string(5000, 'x')); });
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find("disk full or file size limit"), std::string::npos) << message;
    su::append_to_file(dir.file("metrics.jsonl"), std::string(600, 'a'));
    message = expect_error([&] { su::append_to_file(dir.file("metrics.jsonl"), std::string(600, 'b')); });
    EXPECT_NE(message.find("metrics.jsonl"), std::string::npos) << message;
    EXPECT_NE(message.find("disk full or file size limit"), std::string::npos) << message;
  }
  EXPECT_EQ(read_file(path), "previous");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(Failures, OutputFolderIsCheckedBeforeTraining) {
  TempDir dir;
  write_file(dir.file("file"), "x");
  auto message = expect_error([&] { su::check_output_folder(dir.file("file/run"), 0); });
  EXPECT_NE(message.find("cannot be created"), std::string::npos) << message;
  message = expect_error([&] { su::check_output_folder(dir.file("run"), int64_t{1} << 60); });
  EXPECT_NE(message.find("MiB free"), std::string::npos) << message;
  su::check_output_folder(dir.file("run"), 1 << 20);
  EXPECT_TRUE(std::filesystem::is_directory(dir.file("run")));
  if (geteuid() != 0) {  // root writes anywhere
    std::filesystem::permissions(dir.file("run"), std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
    message = expect_error([&] { su::check_output_folder(dir.file("run"), 0); });
    EXPECT_NE(message.find("not writable"), std::string::npos) << message;
    std::filesystem::permissions(dir.file("run"), std::filesystem::perms::owner_all);
  }
}

TEST(Failures, NanLossStopsAndKeepsTheLastGoodCheckpoint) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TempDir dir;
  auto data = sd::open_data(sd::parse_data_spec("fashion-mnist"),
                            sd::DataOptions().batch_size(16).limit_train(160).limit_val(32).seed(4));
  data.train = std::make_unique<PoisonedStream>(std::move(data.train), /*epoch=*/1, /*step=*/3);
  auto options = sn::ClassifierOptions().arch("resnet10").width(4).in_channels(1).stem(sn::Stem::kSmall).num_classes(10);
  auto model = sn::make_classifier(options);
  tr::CheckpointMetadata meta;
  meta.model = options;
  auto message = expect_error([&] {
    tr::fit(model, data, tr::TrainOptions().epochs(3).batch_size(16).lr(0.05),
            tr::RunContext().observer({}).out_dir(dir.file("run")), meta);
  });
  EXPECT_NE(message.find("at epoch 2, step 4"), std::string::npos) << message;
  EXPECT_NE(message.find("last good checkpoint"), std::string::npos) << message;
  auto loaded = tr::load_checkpoint(dir.file("run/checkpoint.pt"));
  EXPECT_EQ(loaded.metadata.epoch, 1);
  for (const auto& p : loaded.model->parameters()) EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
  EXPECT_EQ(tr::read_training_state(dir.file("run/checkpoint.pt"))->epoch, 1);
}

TEST(Failures, SigtermWritesACheckpointAndResumingMatchesAnUninterruptedRun) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TempDir dir;
  const auto whole = dir.file("whole"), part = dir.file("part");
  std::string out;
  ASSERT_EQ(run_command(kCli + " train --epochs 3 --out " + whole + kTiny, &out), 0) << out;
  // Interrupt once the first epoch is done (wherever the run is by then).
  const std::string script = kCli + " train --epochs 3 --out " + part + kTiny + " & pid=$!; " +
                             "while [ ! -s " + part + "/metrics.jsonl ]; do sleep 0.02; done; kill -TERM $pid; wait $pid";
  out.clear();
  const int rc = run_command("bash -c '" + script + "'", &out);
  const bool finished_first = rc == 0;  // a machine fast enough to finish before the signal
  if (!finished_first) {
    EXPECT_EQ(rc, 143) << out;
    EXPECT_NE(out.find("interrupted at epoch"), std::string::npos) << out;
    EXPECT_NE(out.find("resume with: splitshare train --resume " + part), std::string::npos) << out;
    out.clear();
    ASSERT_EQ(run_command(kCli + " train --resume " + part, &out), 0) << out;
  }
  auto a = tr::read_archive_tensors(whole + "/checkpoint.pt"), b = tr::read_archive_tensors(part + "/checkpoint.pt");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
  auto lines = read_file(part + "/metrics.jsonl");
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 3);
}

TEST(Failures, SigintStopsWithStatus130) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TempDir dir;
  const auto run = dir.file("run");
  const std::string script = kCli + " train --epochs 50 --out " + run + kTiny + " & pid=$!; " +
                             "while [ ! -s " + run + "/checkpoint.pt ]; do sleep 0.02; done; kill -INT $pid; wait $pid";
  std::string out;
  EXPECT_EQ(run_command("bash -c '" + script + "'", &out), 130) << out;
  EXPECT_NE(out.find("interrupted at epoch"), std::string::npos) << out;
  auto state = tr::read_training_state(run + "/checkpoint.pt");
  ASSERT_TRUE(state);
  EXPECT_GE(state->global_step, 20);
}

TEST(Failures, KillNineAtAnyMomentLeavesALoadableCheckpoint) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TempDir dir;
  const auto run = dir.file("run");
  // A checkpoint after every step, so kills land while one is being written; after each
  // kill the run is resumed (or started) again.
  for (const char* delay : {"0", "0.03", "0.07", "0.11", "0.2", "0.31", "0.5"}) {
    const std::string start = std::filesystem::exists(run + "/checkpoint.pt")
                                  ? kCli + " train --resume " + run + " --checkpoint-every 1"
                                  : kCli + " train --epochs 50 --checkpoint-every 1 --out " + run + kTiny;
    const std::string script = start + " >/dev/null 2>&1 & pid=$!; " + "while [ ! -s " + run +
                               "/checkpoint.pt ]; do sleep 0.01; done; sleep " + delay + "; kill -9 $pid; wait $pid";
    std::string out;
    EXPECT_EQ(run_command("bash -c '" + script + "'", &out), 137) << out;
    auto loaded = tr::load_checkpoint(run + "/checkpoint.pt");
    auto state = tr::read_training_state(run + "/checkpoint.pt");
    ASSERT_TRUE(state) << "after kill -9 with delay " << delay;
  }
  std::string out;
  ASSERT_EQ(run_command(kCli + " train --resume " + run + " --epochs 2", &out), 0) << out;
  EXPECT_EQ(tr::read_training_state(run + "/checkpoint.pt")->epoch, 2);
  for (const auto& entry : std::filesystem::directory_iterator(run)) {
    EXPECT_NE(entry.path().extension(), ".tmp") << "left behind: " << entry.path();
  }
}

TEST(Failures, FullDiskStopsWithAClearErrorAndKeepsTheCheckpoint) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TempDir dir;
  const auto run = dir.file("run");
  std::string out;
  ASSERT_EQ(run_command(kCli + " train --epochs 1 --out " + run + kTiny, &out), 0) << out;
  const auto before = read_file(run + "/checkpoint.pt");
  // ulimit -f counts 1 KiB blocks: 20 KiB is less than a checkpoint of this model.
  ASSERT_LT(20 * 1024, static_cast<int64_t>(before.size()));
  out.clear();
  EXPECT_EQ(run_command("bash -c 'ulimit -f 20; " + kCli + " train --resume " + run + " --epochs 2'", &out), 1) << out;
  EXPECT_NE(out.find("disk full or file size limit"), std::string::npos) << out;
  EXPECT_NE(out.find(run + "/"), std::string::npos) << out;
  EXPECT_EQ(read_file(run + "/checkpoint.pt"), before);
  EXPECT_FALSE(std::filesystem::exists(run + "/checkpoint.pt.tmp"));
  EXPECT_EQ(tr::read_training_state(run + "/checkpoint.pt")->epoch, 1);
}
