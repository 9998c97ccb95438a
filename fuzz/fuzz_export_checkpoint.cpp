#include "fuzz_target.h"

#include <splitshare/export/export.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

// The input is a checkpoint file (a TorchScript archive with splitshare.json), read the way
// `splitshare export` reads it. The export either refuses it, naming the checkpoint, or writes
// a whole ONNX file and a whole TorchScript file. Verification is off: it runs the model on
// random images of the side the metadata states, which the metadata bounds already cover.
namespace splitshare::fuzz {

namespace {

bool written(const std::string& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  return !error && size > 0 && !std::filesystem::exists(path + ".tmp");
}

}  // namespace

void export_checkpoint(const uint8_t* data, size_t size) {
  const std::string stem = "/tmp/splitshare-fuzz-" + std::to_string(::getpid()) + "-export";
  const std::string checkpoint = stem + "-checkpoint.pt";
  const std::string onnx = stem + ".onnx";
  const std::string torchscript = stem + ".ts.pt";
  {
    std::ofstream out(checkpoint, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  std::filesystem::remove(onnx);
  std::filesystem::remove(torchscript);
  try {
    train::export_onnx(checkpoint, onnx, train::OnnxOptions().verify(false));
  } catch (const c10::Error& e) {
    require_named(e, checkpoint);
    require(!std::filesystem::exists(onnx) && !std::filesystem::exists(onnx + ".tmp"), "a refused export left a file");
    return;
  }
  require(written(onnx), "an accepted ONNX export is not a whole file");
  // The same checkpoint was accepted once; TorchScript's export reads it the same way.
  train::export_torchscript(checkpoint, torchscript, train::ExportOptions().verify(false));
  require(written(torchscript), "an accepted TorchScript export is not a whole file");
}

}  // namespace splitshare::fuzz

SPLITSHARE_FUZZ_ENTRY(export_checkpoint)
