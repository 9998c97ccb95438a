#pragma once

// One fuzz target = one function `splitshare::fuzz::<name>(data, size)`. Built with
// -DSPLITSHARE_LIBFUZZER (scripts/fuzz) the file also defines libFuzzer's entry
// point; in normal builds tests/test_fuzz_corpus.cpp calls the functions on every
// file of fuzz/corpus/<name>/ so that the seeds and past crashers replay in ctest.
//
// A target returns normally when the reader accepts the input or refuses it with a
// c10::Error (the clean refusal every reader promises); anything else (another
// exception, a crash, a sanitizer report, a leak) is a finding.

#include <c10/util/Exception.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace splitshare::fuzz {

/// idx3/idx1 files, plain or gzip (data::parse_idx_images / parse_idx_labels).
void idx(const uint8_t* data, size_t size);
/// CIFAR-10/100 binary batches and class-name files (data::read_cifar10 / read_cifar100).
void cifar(const uint8_t* data, size_t size);
/// JPEG and PNG decoding with varied options (data::ImageDecoder, data::decode_image).
void image(const uint8_t* data, size_t size);
/// A checkpoint's splitshare.json, gate (format version 2) included (train::parse_checkpoint_metadata).
void checkpoint_metadata(const uint8_t* data, size_t size);
/// A --class-map file (data::read_class_map).
void class_map(const uint8_t* data, size_t size);
/// A `predict @LIST` file (eval::expand_image_arguments).
void image_list(const uint8_t* data, size_t size);
/// A checkpoint file read by the ONNX and TorchScript export (train::export_onnx /
/// export_torchscript on a path).
void export_checkpoint(const uint8_t* data, size_t size);
/// A tar archive (a WebDataset shard) listed by data::list_tar.
void tar(const uint8_t* data, size_t size);

/// A property that must hold whatever the input: aborts (a finding) when it does not.
/// Not TORCH_CHECK: a c10::Error would look like a clean refusal.
inline void require(bool condition, const char* what, const std::string& detail = "") {
  if (condition) return;
  std::fprintf(stderr, "fuzz property violated: %s %s\n", what, detail.c_str());
  std::abort();
}

/// A refusal must name the input: `message` has to contain `name`.
inline void require_named(const c10::Error& error, const std::string& name) {
  const std::string message = error.what_without_backtrace();
  require(message.find(name) != std::string::npos, "refusal does not name the file:", message);
}

}  // namespace splitshare::fuzz

#ifdef SPLITSHARE_LIBFUZZER
#define SPLITSHARE_FUZZ_ENTRY(name)                                             \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {    \
    splitshare::fuzz::name(data, size);                                         \
    return 0;                                                                   \
  }
#else
#define SPLITSHARE_FUZZ_ENTRY(name)
#endif
