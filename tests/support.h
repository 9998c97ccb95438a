#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <random>
#include <string>

namespace splitshare::testing {

/// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("splitshare-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

/// Writes bytes to a file.
inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "could not write " << path;
}

/// Reads a whole file.
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

/// Runs a shell command, returns its exit status and stdout+stderr in `output`.
inline int run_command(const std::string& command, std::string* output) {
  std::string full = command + " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) {
    if (output != nullptr) output->append(buffer, n);
  }
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Whether this process is the child that expect_passes_on_avx2() started.
inline bool in_avx2_child() { return std::getenv("SPLITSHARE_TEST_ISA_CHILD") != nullptr; }

/// Runs the test `name` of this binary again in a child process held to oneDNN's AVX2 kernels
/// (ONEDNN_MAX_CPU_ISA=AVX2, as on a CPU without AVX-512 or VNNI), and expects it to pass.
inline void expect_passes_on_avx2(const std::string& name) {
  const auto self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::string output;
  // oneDNN's bugs there can spin instead of crashing: a timeout turns that into a failure.
  const int rc = run_command("SPLITSHARE_TEST_ISA_CHILD=1 ONEDNN_MAX_CPU_ISA=AVX2 timeout 300 '" + self +
                                 "' --gtest_filter=" + name,
                             &output);
  EXPECT_EQ(rc, 0) << output;
  EXPECT_NE(output.find("[  PASSED  ] 1 test"), std::string::npos) << output;
}

/// The project environment's Python with torch and torchvision (CMake's SPLITSHARE_PYTHON,
/// .venv/bin/python by default): the same libtorch version the C++ build uses.
inline const char* python() { return SPLITSHARE_PYTHON; }

/// True when the Python reference (torch, torchvision) is importable. When the build was
/// configured with that Python present, its absence is a failure, not a skip: CI must not
/// quietly stop comparing with PyTorch.
inline bool have_python_torch() {
  if (run_command(std::string(python()) + " -c 'import torch, torchvision'", nullptr) == 0) return true;
  if (SPLITSHARE_PYTHON_REQUIRED) ADD_FAILURE() << python() << " cannot import torch and torchvision: run scripts/setup";
  return false;
}

/// The message of the c10::Error `body` throws, or "" (and a test failure) when it does not throw.
inline std::string expect_error(const std::function<void()>& body) {
  try {
    body();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  ADD_FAILURE() << "expected a c10::Error";
  return "";
}

/// Asserts two tensors have the same shape and agree within an absolute+relative tolerance.
inline void expect_close(const torch::Tensor& a, const torch::Tensor& b, double atol, double rtol = 0.0) {
  ASSERT_EQ(a.sizes(), b.sizes());
  auto diff = (a.to(torch::kDouble) - b.to(torch::kDouble)).abs();
  auto bound = atol + rtol * b.to(torch::kDouble).abs();
  auto worst = (diff - bound).max().item<double>();
  EXPECT_LE(worst, 0.0) << "max abs diff " << diff.max().item<double>() << " (atol " << atol << ", rtol " << rtol << ")";
}

}  // namespace splitshare::testing
