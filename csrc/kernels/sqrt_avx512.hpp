// The AVX-512 kernels' float32 lanes: 16 elements in a __m512, and a correctly rounded square root
// computed on the FMA units instead of the square-root unit. Included by all.hpp only in the
// AVX-512 object (csrc/isa/avx512.cpp, which includes <immintrin.h> before switching the target).
//
// Why: in cache, RMSprop, AdaGrad, AdaDelta and Adam wait on the divider, which computes both the
// square roots and the divisions (vsqrtps zmm issues about once per 12 cycles, vdivps once per
// 10). The FMA ports have spare issue slots in these kernels, but not enough for every square
// root: all of them there saturates the ports while the divider idles. So the kernels balance
// the two (lanes.hpp): one vector in three (one in six for Adam) takes vsqrtps, the rest this
// sequence; AdaDelta takes one of its two roots on each. In cache, on 2 threads, that took 0.69
// to 0.76 of the time with vsqrtps for every kernel but centered RMSprop (0.87 to 0.97), against
// 0.75 to 0.88 with every root here (benchmarks/ab_core.py; see benchmarks/RESULTS.md, section 4).
//
// The result is bit for bit the hardware's sqrt in round-to-nearest mode, the default (so every
// instruction set still gives the same bits; in another mode the kernels use vsqrtps only).
// For x in [2^-80, 2^128):
//   y  = vrsqrt14ps(x)                        |y * sqrt(x) - 1| < 2^-14, as Intel documents
//   s  = x * y,  h = y / 2                     s ~ sqrt(x), h ~ 1 / (2 sqrt(x))
//   e  = 1/2 - s * h;  s += s * e;  h += h * e  one coupled Newton step: about 2^-27 before rounding
//   r  = x - s * s (exact);  s += r * h        the final correction, rounded once
// benchmarks/software_sqrt.c checks this sequence two ways: for every float x in [1, 4) and EVERY
// seed y within the documented bound of vrsqrt14ps (not only the seed this CPU returns; other
// CPUs may return other bits), the result equals sqrt(x); 24.4e9 pairs, none differ. Each step
// scales exactly with x -> 4^k x, y -> 2^-k y while no result underflows or overflows, which
// holds in the range above (x >= 2^-80 keeps r at zero or >= 2^-126, so also with flush-to-zero),
// so [1, 4) stands for the whole range. It also compares all 2^32 inputs against vsqrtps on this
// CPU; tests/test_software_sqrt.py compares _core.sqrt_ with NumPy over all of [1, 4), the
// range's ends, every class of special value and a random sample of all inputs.
//
// Lanes outside the range (negative, -0, subnormal, below 2^-80, infinite, NaN) are recomputed
// by the hardware instruction, so they too get its bits, NaN payloads included; +0 is computed
// in line (its seed is set to 0, so that every step gives 0).

template <>
struct FoLanes<float> {
  static constexpr int width = 16;
  static constexpr bool software_sqrt = true;
  using type = __m512;
  // The sequence below rounds once, to nearest: only in round-to-nearest mode (MXCSR rounding
  // bits 00, the default) does it give vsqrtps's bits. Under another rounding mode (the worker
  // threads take the caller's, see fusedoptim/runtime.hpp) every root goes to the unit
  // (fo_for_lanes asks this of the lanes with a software square root only).
  static bool exact_sqrt() { return (_mm_getcsr() & 0x6000u) == 0; }
};

inline __m512 fo_sqrt(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i low = _mm512_set1_epi32(0x17800000);                // 2^-80
  const __m512i span = _mm512_set1_epi32(0x7f800000 - 0x17800000);  // [2^-80, infinity)
  const __mmask16 nonzero = _mm512_test_epi32_mask(bits, bits);
  const __mmask16 redo = _mm512_mask_cmpge_epu32_mask(nonzero, _mm512_sub_epi32(bits, low), span);
  const __m512 y = _mm512_maskz_rsqrt14_ps(nonzero, x);  // 0 for +0, so that s and h stay 0
  __m512 s = _mm512_mul_ps(x, y);
  __m512 h = _mm512_mul_ps(y, _mm512_set1_ps(0.5f));
  const __m512 e = _mm512_fnmadd_ps(s, h, _mm512_set1_ps(0.5f));
  s = _mm512_fmadd_ps(s, e, s);
  h = _mm512_fmadd_ps(h, e, h);
  s = _mm512_fmadd_ps(_mm512_fnmadd_ps(s, s, x), h, s);
  if (__builtin_expect(redo != 0, 0)) s = _mm512_mask_sqrt_ps(s, redo, x);
  return s;
}

// vsqrtps on all lanes (written with a mask of all ones because GCC 12 warns, with -Wall, that
// the unmasked intrinsic's placeholder source may be used uninitialized).
inline __m512 fo_sqrt_unit(__m512 x) { return _mm512_mask_sqrt_ps(x, 0xFFFF, x); }

// max(a, b) that propagates NaN from either side, lane by lane, as the scalar fo_nan_max does.
inline __m512 fo_nan_max(__m512 a, __m512 b) {
  const __mmask16 take_b = _mm512_cmp_ps_mask(b, a, _CMP_GT_OQ) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q);
  return _mm512_mask_blend_ps(take_b, a, b);
}
