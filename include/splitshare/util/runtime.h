#pragma once

namespace splitshare::util {

/// Sets libtorch's intra-op threads to `requested` (> 0) or to every available core (0),
/// and makes OpenBLAS (when libtorch uses it) single-threaded: nn::parallel_mm splits large products across
/// libtorch's pool itself. Two pools on the same cores (OpenMP's workers spinning while
/// OpenBLAS's threads run, or the reverse) made the heads' GEMMs up to 2x slower
/// between other operations. Returns the intra-op thread count in effect.
int configure_threads(int requested);

/// Threads one OpenBLAS call uses, or 0 when libtorch's BLAS is not OpenBLAS.
int blas_threads();

/// True when a BLAS call made on one of libtorch's pool threads runs on that thread alone, so
/// nn::parallel_mm may hand each thread its own block: OpenBLAS set to one thread, or MKL (the
/// torch wheel's BLAS), whose threads inside an OpenMP parallel region form a team of one.
bool blas_single_threaded_in_pool();

/// Sets OpenBLAS's thread count (n >= 1); false when libtorch's BLAS is not OpenBLAS.
bool set_blas_threads(int n);

/// Keeps memory that tensors free inside the process (glibc malloc: no trimming of the
/// heap, blocks up to 32 MiB from the heap instead of fresh mmap pages). Each training
/// step otherwise gets its activations as new pages from the kernel and pays a page fault
/// per 4 KiB (about 790,000 faults for 45 steps of the default model). No effect with
/// another C library.
void configure_allocator();

/// The malloc this process runs on: "tcmalloc" (the CLI links it where Debian's
/// libtcmalloc-minimal4 is installed), "jemalloc" (preloaded) or "libc".
const char* malloc_name();

}  // namespace splitshare::util
