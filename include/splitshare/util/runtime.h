#pragma once

namespace splitshare::util {

/// Sets libtorch's intra-op threads to `requested` (> 0) or to every available core (0),
/// and makes OpenBLAS single-threaded: nn::parallel_mm splits large products across
/// libtorch's pool itself. Two pools on the same cores (OpenMP's workers spinning while
/// OpenBLAS's threads run, or the reverse) made the heads' GEMMs up to 2x slower
/// between other operations. Returns the intra-op thread count in effect.
int configure_threads(int requested);

/// Threads one OpenBLAS call uses, or 0 when libtorch's BLAS is not OpenBLAS.
int blas_threads();

/// Sets OpenBLAS's thread count (n >= 1); false when libtorch's BLAS is not OpenBLAS.
bool set_blas_threads(int n);

/// Keeps memory that tensors free inside the process (glibc malloc: no trimming of the
/// heap, blocks up to 32 MiB from the heap instead of fresh mmap pages). Each training
/// step otherwise gets its activations as new pages from the kernel and pays a page fault
/// per 4 KiB (about 790,000 faults for 45 steps of the default model). No effect with
/// another C library.
void configure_allocator();

}  // namespace splitshare::util
