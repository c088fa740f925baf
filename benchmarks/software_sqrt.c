// Can a correctly rounded float32 square root on the FMA units beat the square-root unit?
//
// In cache, AdaGrad, RMSprop, AdaDelta and Adam wait on the divider, which computes both their
// square roots and their divisions (benchmarks/divider_floor.c). This program checks and times
// the square root that branch fma-sqrt puts in the AVX-512 kernels:
//   y = vrsqrt14ps(x)  (|y sqrt(x) - 1| < 2^-14 as Intel documents; 0 for x = +0)
//   s = x y;  h = y / 2;  e = 1/2 - s h;  s += s e;  h += h e;  s += (x - s s) h
// with lanes outside [2^-80, 2^128) (negative, -0, subnormal, tiny, infinite, NaN) recomputed by
// vsqrtps.
//
//   gcc -O3 -mavx512f -mavx512dq -ffp-contract=off -fno-math-errno
//       benchmarks/software_sqrt.c -o /tmp/software_sqrt -lm      (one command)
//   /tmp/software_sqrt            RMSprop on one core in cache, 5 alternating pairs
//   /tmp/software_sqrt --all      every one of the 2^32 inputs against vsqrtps (this CPU's seeds)
//   /tmp/software_sqrt --seeds 14 every x in [1, 4) with EVERY seed y within 2^-14 of 1/sqrt(x),
//                                 not only this CPU's (other CPUs' vrsqrt14ps may return other
//                                 bits); --seeds 10 widens the bound until results differ
//
// --seeds covers every input in range, not only [1, 4): each step scales exactly with
// x -> 4^k x, y -> 2^-k y while no result under- or overflows, and x >= 2^-80 keeps x - s s at 0
// or >= 2^-126 (so flush-to-zero changes nothing either). This is evidence for
// benchmarks/RESULTS.md (section 4): this RMSprop loop is faster with it on one core, but in the
// library's kernels, which give the FMA units more other work, it made most optimizers slower on
// the development VM (benchmarks/ab_core.py), so the library keeps the unit's square root.
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N 50000
#define PASSES 400

static float p[N], g[N], v[N];

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

// The sequence from a given seed (the part --seeds varies).
static inline __m512 refine(__m512 x, __m512 y) {
  __m512 s = _mm512_mul_ps(x, y), h = _mm512_mul_ps(y, _mm512_set1_ps(0.5f));
  const __m512 e = _mm512_fnmadd_ps(s, h, _mm512_set1_ps(0.5f));
  s = _mm512_fmadd_ps(s, e, s);
  h = _mm512_fmadd_ps(h, e, h);
  return _mm512_fmadd_ps(_mm512_fnmadd_ps(s, s, x), h, s);
}

static inline __m512 fma_sqrt(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __mmask16 nonzero = _mm512_test_epi32_mask(bits, bits);
  const __mmask16 redo = _mm512_mask_cmpge_epu32_mask(
      nonzero, _mm512_sub_epi32(bits, _mm512_set1_epi32(0x17800000)),
      _mm512_set1_epi32(0x7f800000 - 0x17800000));
  __m512 s = refine(x, _mm512_maskz_rsqrt14_ps(nonzero, x));
  if (__builtin_expect(redo != 0, 0)) s = _mm512_mask_sqrt_ps(s, redo, x);
  return s;
}

__attribute__((noinline)) static void rmsprop_hardware(float* restrict p, const float* restrict g,
                                                       float* restrict v, long n) {
  for (long i = 0; i < n; i++) {
    const float d = g[i];
    const float sq = v[i] * 0.99f + 0.01f * (d * d);
    v[i] = sq;
    p[i] = p[i] + -1e-9f * (d / (sqrtf(sq) + 1e-8f));
  }
}

__attribute__((noinline)) static void rmsprop_fma_sqrt(float* restrict p, const float* restrict g,
                                                       float* restrict v, long n) {
  long i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 d = _mm512_loadu_ps(g + i);
    const __m512 sq = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(v + i), _mm512_set1_ps(0.99f)),
                                    _mm512_mul_ps(_mm512_set1_ps(0.01f), _mm512_mul_ps(d, d)));
    _mm512_storeu_ps(v + i, sq);
    const __m512 avg = _mm512_add_ps(fma_sqrt(sq), _mm512_set1_ps(1e-8f));
    _mm512_storeu_ps(p + i, _mm512_add_ps(_mm512_loadu_ps(p + i),
                                          _mm512_mul_ps(_mm512_set1_ps(-1e-9f), _mm512_div_ps(d, avg))));
  }
  rmsprop_hardware(p + i, g + i, v + i, n - i);
}

static long check_all_inputs(void) {
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  long differ = 0;
  for (unsigned long b = 0; b < (1ul << 32); b += 16) {
    const __m512 x = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_set1_epi32((unsigned)b), lanes));
    const __mmask16 same = _mm512_cmpeq_epi32_mask(_mm512_castps_si512(fma_sqrt(x)),
                                                   _mm512_castps_si512(_mm512_sqrt_ps(x)));
    differ += 16 - __builtin_popcount(same);
  }
  return differ;
}

// Every x in [1, 4) and every float y with |y sqrt(x) - 1| < 2^-bound (the window is computed in
// double and widened by 2 floats at each end, so it errs on the side of more seeds).
static long check_every_seed(int bound, long* seeds) {
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  long differ = 0;
  for (unsigned xb = 0x3f800000u; xb < 0x40800000u; xb++) {
    float x, lo_f, hi_f;
    memcpy(&x, &xb, 4);
    const float want = sqrtf(x);
    unsigned wb, lo, hi;
    memcpy(&wb, &want, 4);
    const double y = 1.0 / sqrt((double)x), r = ldexp(1.0, -bound);
    lo_f = (float)(y * (1 - r));
    hi_f = (float)(y * (1 + r));
    memcpy(&lo, &lo_f, 4);
    memcpy(&hi, &hi_f, 4);
    lo -= 2;
    hi += 2;
    const __m512 vx = _mm512_set1_ps(x);
    for (unsigned yb = lo; yb <= hi; yb += 16) {
      const __mmask16 in = hi - yb >= 15 ? 0xffff : (__mmask16)((1u << (hi - yb + 1)) - 1);
      const __m512 vy = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_set1_epi32(yb), lanes));
      differ += __builtin_popcount(_mm512_mask_cmpneq_epi32_mask(
          in, _mm512_castps_si512(refine(vx, vy)), _mm512_set1_epi32(wb)));
      *seeds += __builtin_popcount(in);
    }
  }
  return differ;
}

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "--all") == 0) {
    const double t0 = now();
    const long differ = check_all_inputs();
    printf("all 2^32 inputs: %ld square roots differ from vsqrtps (%.0f s)\n", differ, now() - t0);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "--seeds") == 0) {
    const double t0 = now();
    long seeds = 0;
    const int bound = atoi(argv[2]);
    const long differ = check_every_seed(bound, &seeds);
    printf("every x in [1, 4), every seed within 2^-%d: %ld (x, seed) pairs, %ld results differ "
           "from vsqrtps (%.0f s)\n", bound, seeds, differ, now() - t0);
    return 0;
  }
  srand(1);
  for (int i = 0; i < N; i++) {
    p[i] = rand() / (float)RAND_MAX;
    g[i] = rand() / (float)RAND_MAX - 0.5f;
    v[i] = 0.01f * rand() / (float)RAND_MAX;
  }
  for (int k = 0; k < 5; k++) {
    const double t0 = now();
    for (int r = 0; r < PASSES; r++) rmsprop_hardware(p, g, v, N);
    const double t1 = now();
    for (int r = 0; r < PASSES; r++) rmsprop_fma_sqrt(p, g, v, N);
    const double t2 = now();
    printf("RMSprop, one core, %d float32 in cache: vsqrtps %.3f ns/element, FMA units %.3f\n", N,
           (t1 - t0) / PASSES / N * 1e9, (t2 - t1) / PASSES / N * 1e9);
  }
  return 0;
}
