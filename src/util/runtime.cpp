#include <splitshare/util/runtime.h>

#include <torch/torch.h>

#include <dlfcn.h>
#include <sched.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <string>
#include <thread>

namespace splitshare::util {

namespace {

// OpenBLAS's thread control, looked up at run time: libtorch may link another BLAS
// (MKL, or the reference BLAS), and then there is nothing to set.
using GetThreads = int (*)();
using SetThreads = void (*)(int);

GetThreads openblas_get() {
  return reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
}

SetThreads openblas_set() {
  return reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
}

}  // namespace

int blas_threads() {
  // Looked up once: nn::parallel_mm asks on every product.
  static const GetThreads get = openblas_get();
  return get ? get() : 0;
}

bool blas_single_threaded_in_pool() {
  const int openblas = blas_threads();
  return openblas > 0 ? openblas == 1 : at::hasMKL();
}

bool set_blas_threads(int n) {
  TORCH_CHECK(n >= 1, "set_blas_threads: need at least 1 thread, got ", n);
  const auto set = openblas_set();
  if (!set) return false;
  set(n);
  return true;
}

int configure_threads(int requested) {
  int n = requested;
  if (n <= 0) {
    cpu_set_t set;
    n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  torch::set_num_threads(n);
  set_blas_threads(1);
  return torch::get_num_threads();
}

const char* malloc_name() {
  if (dlsym(RTLD_DEFAULT, "tc_malloc") != nullptr) return "tcmalloc";
  if (dlsym(RTLD_DEFAULT, "mallctl") != nullptr) return "jemalloc";
  return "libc";
}

void configure_allocator() {
#if defined(__GLIBC__)
  // Only glibc's own malloc reads these; tcmalloc or jemalloc would ignore them anyway.
  if (std::string(malloc_name()) != "libc") return;
  // glibc refuses mmap thresholds above 32 MiB on 64-bit systems.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
#endif
}

}  // namespace splitshare::util
