// Vector lanes whose square root is the hardware's: AVX-512 float64 (8 elements in a __m512d) and
// AVX2 float32 and float64 (8 in a __m256, 4 in a __m256d). Included by all.hpp in those objects
// only (csrc/isa/avx512.cpp and avx2.cpp include <immintrin.h> before switching the target).
//
// Why: the kernels' body is written once over a lane type (common.hpp), and only vector lanes take
// the walk with software prefetch on long ranges (lanes.hpp, fo_for_lanes). Without these, these
// types ran single-element lanes, which the compiler vectorises but which never prefetch, so out
// of cache they stayed with the hardware prefetchers alone (benchmarks/RESULTS.md, section 1).
// The operations are the same IEEE operations in the same order as the single-element lanes, so
// the results keep their bits. Unlike AVX-512 float32 (sqrt_avx512.hpp), every square root here
// is vsqrtps / vsqrtpd: the AVX2 reciprocal square root is too coarse for the proven sequence, and
// float64 has no such sequence here.

#if defined(FUSEDOPTIM_AVX512_LANES)
template <>
struct FoLanes<double> {
  static constexpr int width = 8;
  static constexpr bool software_sqrt = false;
  using type = __m512d;
};

// Written with a mask of all ones, as fo_sqrt_unit(__m512) is (sqrt_avx512.hpp), because GCC 12
// warns with -Wall that the unmasked intrinsic's placeholder source may be used uninitialized.
inline __m512d fo_sqrt_unit(__m512d x) { return _mm512_mask_sqrt_pd(x, 0xFF, x); }
inline __m512d fo_sqrt(__m512d x) { return fo_sqrt_unit(x); }

inline __m512d fo_nan_max(__m512d a, __m512d b) {
  const __mmask8 take_b = _mm512_cmp_pd_mask(b, a, _CMP_GT_OQ) | _mm512_cmp_pd_mask(b, b, _CMP_UNORD_Q);
  return _mm512_mask_blend_pd(take_b, a, b);
}
#endif

#if defined(FUSEDOPTIM_AVX2_LANES)
template <>
struct FoLanes<float> {
  static constexpr int width = 8;
  static constexpr bool software_sqrt = false;
  using type = __m256;
};

template <>
struct FoLanes<double> {
  static constexpr int width = 4;
  static constexpr bool software_sqrt = false;
  using type = __m256d;
};

inline __m256 fo_sqrt_unit(__m256 x) { return _mm256_sqrt_ps(x); }
inline __m256 fo_sqrt(__m256 x) { return fo_sqrt_unit(x); }
inline __m256d fo_sqrt_unit(__m256d x) { return _mm256_sqrt_pd(x); }
inline __m256d fo_sqrt(__m256d x) { return fo_sqrt_unit(x); }

// max(a, b) that propagates NaN from either side, lane by lane, as the scalar fo_nan_max does.
inline __m256 fo_nan_max(__m256 a, __m256 b) {
  const __m256 take_b = _mm256_or_ps(_mm256_cmp_ps(b, a, _CMP_GT_OQ), _mm256_cmp_ps(b, b, _CMP_UNORD_Q));
  return _mm256_blendv_ps(a, b, take_b);
}
inline __m256d fo_nan_max(__m256d a, __m256d b) {
  const __m256d take_b = _mm256_or_pd(_mm256_cmp_pd(b, a, _CMP_GT_OQ), _mm256_cmp_pd(b, b, _CMP_UNORD_Q));
  return _mm256_blendv_pd(a, b, take_b);
}
#endif
