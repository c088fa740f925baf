// The kernels compiled for AVX2 + FMA (x86-64-v3). Selected at import only on CPUs that have them.
// The kernels live in an anonymous namespace so that no function compiled here can be merged by the
// linker with a baseline copy of the same name and then run on a CPU without AVX2.
#include "fusedoptim/kernels.hpp"

#if defined(FUSEDOPTIM_HAVE_X86_VARIANTS)
#include <immintrin.h>
#define FUSEDOPTIM_AVX2_LANES 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace {
#include "../kernels/all.hpp"
}  // namespace

void fusedoptim::fill_tables_avx2(KernelTable<float>& f32, KernelTable<double>& f64) {
  fill_table(f32);
  fill_table(f64);
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
