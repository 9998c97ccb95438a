#pragma once
// Helpers of the command-line tests (tests/e2e): running the tool, expecting a clean refusal,
// and tiny inputs (an mnist:DIR folder, a checkpoint) that make commands fast.
#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/nn/classifier.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "data_files.h"
#include "support.h"

namespace splitshare::testing {

/// The CLI's exit status (-1 for a signal) and its output (stdout and stderr).
struct CliResult {
  int status;
  std::string output;
};

/// Runs `splitshare ARGS` (ARGS as a shell would split them).
inline CliResult run_cli(const std::string& args) {
  CliResult result;
  result.status = run_command(std::string(SPLITSHARE_CLI) + " " + args, &result.output);
  return result;
}

/// A refused command line: exit status 1 (a clean error, not a crash) and a message with every phrase.
inline void expect_cli_refusal(const std::string& args, const std::vector<std::string>& phrases) {
  SCOPED_TRACE(args);
  const auto result = run_cli(args);
  EXPECT_EQ(result.status, 1) << result.output;
  for (const auto& phrase : phrases) EXPECT_TRUE(contains(result.output, phrase)) << phrase << " in\n" << result.output;
  EXPECT_TRUE(contains(result.output, "error:")) << result.output;
}

/// A valid mnist:DIR folder of `count` 8x8 images per split, labels 0..count-1.
inline void write_tiny_mnist(const std::filesystem::path& dir, uint8_t count) {
  std::filesystem::create_directories(dir);
  std::vector<uint8_t> labels;
  for (uint8_t i = 0; i < count; ++i) labels.push_back(i);
  for (const char* prefix : {"train", "t10k"}) {
    write_file((dir / (std::string(prefix) + "-images-idx3-ubyte")).string(), idx_images_bytes(count, 8, 8));
    write_file((dir / (std::string(prefix) + "-labels-idx1-ubyte")).string(), idx_labels_bytes(labels));
  }
}

/// The metadata of a 3-class, 1-channel, 8-pixel resnet10 of width 4 with a 4-split SSM head.
inline train::CheckpointMetadata tiny_metadata() {
  train::CheckpointMetadata m;
  m.model = nn::ClassifierOptions().arch("resnet10").width(4).in_channels(1).stem(nn::Stem::kSmall).num_classes(3).head(
      nn::HeadOptions().kind(nn::HeadKind::kSSM).splits(4));
  m.classes = {"a", "b", "c"};
  m.preprocess.channels = 1;
  m.preprocess.size = 8;
  m.preprocess.mean = {0.5};
  m.preprocess.std = {0.25};
  return m;
}

/// A freshly initialised checkpoint of `metadata`'s model at `dir`/`name`.
inline std::string tiny_checkpoint(const TempDir& dir, const std::string& name,
                                   const train::CheckpointMetadata& metadata = tiny_metadata()) {
  auto model = nn::make_classifier(metadata.model);
  const auto path = dir.file(name);
  train::save_checkpoint(*model, metadata, path);
  return path;
}

}  // namespace splitshare::testing
