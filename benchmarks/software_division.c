// Does a division computed on the FMA units beat the divider for RMSprop's in-cache kernel?
//
// In cache, RMSprop waits on the square-root and division unit: one sqrt and one division per
// element (benchmarks/divider_floor.c). A correctly rounded float32 division can also be computed
// without that unit: an approximate reciprocal (vrcp14ps), two Newton steps and Markstein's final
// correction, q + (a - b*q) * y, all on the FMA ports, with lanes outside its proven range (here:
// b's exponent far from 0, or b's significand all ones) redone with the hardware division. Then
// the unit does only the square root and the FMA ports the rest, in parallel.
//
// This times RMSprop's update on one core (50,000 float32 elements in cache) both ways, five
// times alternating, and checks the software division against the hardware's on 320 million
// random pairs with exponents in [-27, 32] and on special values (zeros, infinities, NaN,
// subnormals, the range's edges); --all-divisors checks every divisor significand. It is evidence
// for benchmarks/RESULTS.md, not a kernel of the library: the FMA ports have their own work
// (RMSprop's other operations, the loads and stores), and over runs the software division took
// from about 15% less time than the unit's to 10% more, depending on the moment. It is not proven
// to give the hardware's quotient for every input in its range, which a kernel of this library
// (the same bits on every instruction set) would need, so the library keeps the unit's division.
//
//   gcc -O3 -mavx512f -mavx512dq -ffp-contract=off -fno-math-errno
//       benchmarks/software_division.c -o /tmp/software_division   (one command)
//   /tmp/software_division
//   /tmp/software_division --all-divisors 4096        # every divisor x 4096 dividends
//   /tmp/software_division --all-divisors 0 524288    # ... x dividend significands 0 to 2^19-1
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

// RMSprop as fusedoptim's kernel computes it, left to the compiler (hardware sqrt and division).
__attribute__((noinline)) static void rmsprop_hardware(float* restrict p, const float* restrict g,
                                                       float* restrict v, long n, float alpha,
                                                       float one_minus_alpha, float eps,
                                                       float neg_lr) {
  for (long i = 0; i < n; i++) {
    const float d = g[i];
    const float sq = v[i] * alpha + one_minus_alpha * (d * d);
    v[i] = sq;
    const float avg = sqrtf(sq) + eps;
    p[i] = p[i] + neg_lr * (d / avg);
  }
}

// a / b on the FMA ports; lanes it cannot vouch for are flagged in *redo: a or b zero,
// subnormal, infinite or NaN, either magnitude outside [2^-60, 2^61) (so that the quotient, the
// reciprocal and the residual stay normal and the residual exact), b negative (RMSprop's never
// is) or b's significand all ones (the reciprocal's exception in Markstein's theorem).
static inline __m512 divide(__m512 a, __m512 b, __mmask16* redo) {
  const __m512 one = _mm512_set1_ps(1.0f);
  __m512 y = _mm512_rcp14_ps(b);  // 14 bits
  __m512 e = _mm512_fnmadd_ps(b, y, one);
  y = _mm512_fmadd_ps(e, y, y);  // about 28 bits before rounding
  e = _mm512_fnmadd_ps(b, y, one);
  y = _mm512_fmadd_ps(e, y, y);  // the reciprocal, to the last bit or nearly
  __m512 q = _mm512_mul_ps(a, y);
  const __m512 r = _mm512_fnmadd_ps(b, q, a);  // exact residual
  q = _mm512_fmadd_ps(r, y, q);                // Markstein's correction
  const __m512i low = _mm512_set1_epi32(127 - 60), width = _mm512_set1_epi32(120);
  const __m512i bits = _mm512_castps_si512(b);
  const __m512i b_exponent = _mm512_srli_epi32(bits, 23);  // with the sign: negative b is out
  const __m512i a_exponent = _mm512_srli_epi32(_mm512_slli_epi32(_mm512_castps_si512(a), 1), 24);
  *redo |= _mm512_cmpgt_epu32_mask(_mm512_sub_epi32(b_exponent, low), width);
  *redo |= _mm512_cmpgt_epu32_mask(_mm512_sub_epi32(a_exponent, low), width);
  *redo |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7fffff)),
                                   _mm512_set1_epi32(0x7fffff));
  return q;
}

__attribute__((noinline)) static void rmsprop_software(float* restrict p, const float* restrict g,
                                                       float* restrict v, long n, float alpha,
                                                       float one_minus_alpha, float eps,
                                                       float neg_lr) {
  const __m512 a = _mm512_set1_ps(alpha), oma = _mm512_set1_ps(one_minus_alpha);
  const __m512 e = _mm512_set1_ps(eps), lr = _mm512_set1_ps(neg_lr);
  long i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 d = _mm512_loadu_ps(g + i);
    const __m512 sq =
        _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(v + i), a), _mm512_mul_ps(oma, _mm512_mul_ps(d, d)));
    _mm512_storeu_ps(v + i, sq);
    const __m512 avg = _mm512_add_ps(_mm512_sqrt_ps(sq), e);
    __mmask16 redo = 0;
    __m512 q = divide(d, avg, &redo);
    if (__builtin_expect(redo != 0, 0)) q = _mm512_mask_div_ps(q, redo, d, avg);
    _mm512_storeu_ps(p + i, _mm512_add_ps(_mm512_loadu_ps(p + i), _mm512_mul_ps(lr, q)));
  }
  rmsprop_hardware(p + i, g + i, v + i, n - i, alpha, one_minus_alpha, eps, neg_lr);
}

static unsigned lcg(unsigned* s) { return *s = *s * 1664525u + 1013904223u; }

// Every divisor significand (2^23 of them, b in [1, 2)) against `count` dividend significands,
// each dividend with a pseudo-random sign and exponent in [-20, 20]: the software quotient
// against the hardware's. With first < 0 the dividends are 1, 2 - ulp, 1.5, 1 + ulp, then
// pseudo-random; otherwise the significands first, first + 1, ... Rounding depends only on the
// significands while nothing over- or underflows (the range check sends the rest to the unit),
// so first = 0, count = 2^23 is exhaustive: 2^46 pairs, about 6 hours on one core here; split
// it over processes by ranges of first.
static long check_all_divisors(long first, long count) {
  float a[16];
  long differ = 0;
  unsigned s = 777;
  for (long k = 0; k < count; k++) {
    unsigned sig;
    if (first >= 0) sig = (unsigned)(first + k) & 0x7fffff;
    else if (k == 0) sig = 0;
    else if (k == 1) sig = 0x7fffff;
    else if (k == 2) sig = 0x400000;
    else if (k == 3) sig = 1;
    else sig = lcg(&s) & 0x7fffff;
    const unsigned sign = (lcg(&s) >> 31) << 31, exponent = 127 - 20 + (lcg(&s) >> 8) % 41;
    const unsigned bits = sign | (exponent << 23) | sig;
    float x;
    memcpy(&x, &bits, 4);
    for (int j = 0; j < 16; j++) a[j] = x;
    const __m512 va = _mm512_loadu_ps(a);
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (unsigned b0 = 0; b0 < (1u << 23); b0 += 16) {
      const __m512i bb = _mm512_or_si512(_mm512_set1_epi32((127u << 23) | b0), lanes);
      const __m512 vb = _mm512_castsi512_ps(bb);
      __mmask16 redo = 0;
      __m512 q = divide(va, vb, &redo);
      if (redo) q = _mm512_mask_div_ps(q, redo, va, vb);
      const __mmask16 same = _mm512_cmpeq_epi32_mask(_mm512_castps_si512(q),
                                                     _mm512_castps_si512(_mm512_div_ps(va, vb)));
      differ += 16 - __builtin_popcount(same);
    }
    if (first >= 0 && (k + 1) % 65536 == 0) {  // progress of a long exhaustive range
      printf("  dividend significands %ld to %ld: %ld quotients differ so far\n", first,
             first + k, differ);
      fflush(stdout);
    }
  }
  return differ;
}

int main(int argc, char** argv) {
  if ((argc == 3 || argc == 4) && strcmp(argv[1], "--all-divisors") == 0) {
    const long first = argc == 4 ? atol(argv[2]) : -1, count = atol(argv[argc - 1]);
    const double t0 = now();
    const long differ = check_all_divisors(first, count);
    printf("every divisor significand x %ld dividends (%ld quotients): %ld differ from the "
           "hardware's (%.0f s)\n", count, count << 23, differ, now() - t0);
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
    for (int r = 0; r < PASSES; r++) rmsprop_hardware(p, g, v, N, 0.99f, 0.01f, 1e-8f, -1e-9f);
    const double t1 = now();
    for (int r = 0; r < PASSES; r++) rmsprop_software(p, g, v, N, 0.99f, 0.01f, 1e-8f, -1e-9f);
    const double t2 = now();
    printf("RMSprop, one core, in cache: hardware division %.3f ns/element, software %.3f\n",
           (t1 - t0) / PASSES / N * 1e9, (t2 - t1) / PASSES / N * 1e9);
  }
  long differ = 0, total = 0;
  unsigned s = 12345;
  for (long it = 0; it < 20000000; it++) {
    float a[16], b[16], out[16];
    for (int j = 0; j < 16; j++) {
      const unsigned x = lcg(&s), y = lcg(&s);
      const unsigned ab = (x & 0x807fffffu) | ((100 + (x >> 24) % 60) << 23);
      const unsigned bb = (y & 0x007fffffu) | ((100 + (y >> 24) % 60) << 23);
      memcpy(a + j, &ab, 4);
      memcpy(b + j, &bb, 4);
    }
    __mmask16 redo = 0;
    const __m512 va = _mm512_loadu_ps(a), vb = _mm512_loadu_ps(b);
    __m512 q = divide(va, vb, &redo);
    if (redo) q = _mm512_mask_div_ps(q, redo, va, vb);
    _mm512_storeu_ps(out, q);
    for (int j = 0; j < 16; j++, total++) differ += out[j] != a[j] / b[j];
  }
  printf("software division differs from the hardware's in %ld of %ld quotients\n", differ, total);
  // Special values against each other: every pair, both signs.
  const float special[] = {0.0f, 1e-45f, 1.1754942e-38f, 1.17549435e-38f, 8.673617e-19f,
                           8.6736174e-19f, 1.0f, 1.9999999f, 3.4028235e38f, 2.3058430e18f,
                           2.3058431e18f, 1e38f, 1e-38f, 3.0f, INFINITY, NAN};
  const int count = sizeof(special) / sizeof(special[0]);
  long special_differ = 0, special_total = 0;
  for (int i = 0; i < 2 * count; i++)
    for (int j = 0; j < 2 * count; j++) {
      float a[16], b[16], out[16];
      for (int k = 0; k < 16; k++) {
        a[k] = (i < count ? 1.0f : -1.0f) * special[i % count];
        b[k] = (j < count ? 1.0f : -1.0f) * special[j % count];
      }
      __mmask16 redo = 0;
      const __m512 va = _mm512_loadu_ps(a), vb = _mm512_loadu_ps(b);
      __m512 q = divide(va, vb, &redo);
      if (redo) q = _mm512_mask_div_ps(q, redo, va, vb);
      _mm512_storeu_ps(out, q);
      const float h = a[0] / b[0];
      special_total++;
      special_differ += memcmp(&out[0], &h, 4) != 0 && !(out[0] != out[0] && h != h);
    }
  printf("and in %ld of %ld quotients of special values\n", special_differ, special_total);
  return 0;
}
