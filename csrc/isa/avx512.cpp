// The kernels compiled for AVX-512 (F, BW, DQ, VL, CD: x86-64-v4) with 512-bit vectors. Selected at
// import only on CPUs that have them. See avx2.cpp for why the kernels sit in an anonymous namespace.
// The float32 kernels with a square root run 16-element lanes whose square root uses the FMA units
// (kernels/sqrt_avx512.hpp); the intrinsics it needs come from <immintrin.h>, included here.
#include "fusedoptim/kernels.hpp"

#if defined(FUSEDOPTIM_HAVE_X86_VARIANTS)
#include <immintrin.h>
#define FUSEDOPTIM_AVX512_LANES 1
#if defined(__clang__)
// One attribute per push: Clang 14 rejects a list of two in one __attribute__ here.
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512cd,avx2,fma"))), \
                             apply_to = function)
#pragma clang attribute push(__attribute__((min_vector_width(512))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512cd,avx2,fma")
#pragma GCC target("prefer-vector-width=512")
#endif

namespace {
#include "../kernels/all.hpp"
}  // namespace

void fusedoptim::fill_tables_avx512(KernelTable<float>& f32, KernelTable<double>& f64) {
  fill_table(f32);
  fill_table(f64);
}

#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
