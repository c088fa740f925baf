// The throughput of the vector square root and division units of one core: the floor under the
// in-cache time of RMSprop (1 sqrt + 1 division per element), AdaDelta (2 sqrt + 1 division) and
// Adam (1 sqrt + 2 divisions), which fusedoptim computes with correctly rounded IEEE operations
// (the same bits as torch.optim). No memory is touched: 8 independent registers of 16 (AVX-512)
// or 8 (AVX2) lanes keep the units busy, so the time per element is the units' issue rate.
//
//   gcc -O2 -mavx512f benchmarks/divider_floor.c -o /tmp/divider_floor && /tmp/divider_floor
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

#define ITERATIONS 2000000L
#define LANES 8  // registers in flight

// One variant per vector width. `sqrts` and `divs` operations per element and iteration.
#define DEFINE_PROBE(NAME, VEC, WIDTH, SET1, ADD, SQRT, DIV)                                    \
  static double NAME(int sqrts, int divs) {                                                     \
    VEC x[LANES], acc[LANES];                                                                   \
    for (int i = 0; i < LANES; ++i) {                                                           \
      x[i] = SET1(1.0f + 0.1f * i);                                                             \
      acc[i] = SET1(0.0f);                                                                      \
    }                                                                                           \
    const VEC one = SET1(1.0f), tiny = SET1(1e-7f);                                             \
    double best = 1e30;                                                                         \
    for (int repeat = 0; repeat < 5; ++repeat) {                                                \
      const double start = now();                                                               \
      for (long n = 0; n < ITERATIONS; ++n) {                                                   \
        for (int i = 0; i < LANES; ++i) {                                                       \
          VEC v = x[i];                                                                         \
          for (int s = 0; s < sqrts; ++s) v = SQRT(ADD(v, tiny));                              \
          for (int d = 0; d < divs; ++d) v = DIV(one, ADD(v, tiny));                            \
          acc[i] = ADD(acc[i], v);                                                              \
          x[i] = ADD(x[i], tiny);                                                               \
        }                                                                                       \
      }                                                                                         \
      const double elapsed = now() - start;                                                     \
      if (elapsed < best) best = elapsed;                                                       \
    }                                                                                           \
    float sink[WIDTH];                                                                          \
    VEC total = acc[0];                                                                         \
    for (int i = 1; i < LANES; ++i) total = ADD(total, acc[i]);                                 \
    memcpy_sink(sink, &total, sizeof sink);                                                     \
    return best / ((double)ITERATIONS * LANES * WIDTH) * 1e9; /* ns per element */              \
  }

static volatile float keep;
static void memcpy_sink(float* out, const void* in, unsigned long bytes) {
  __builtin_memcpy(out, in, bytes);
  keep = out[0];
}

DEFINE_PROBE(probe256, __m256, 8, _mm256_set1_ps, _mm256_add_ps, _mm256_sqrt_ps, _mm256_div_ps)
#if defined(__AVX512F__)
DEFINE_PROBE(probe512, __m512, 16, _mm512_set1_ps, _mm512_add_ps, _mm512_sqrt_ps, _mm512_div_ps)
#endif

int main(void) {
  const struct { const char* name; int sqrts, divs; } mixes[] = {
      {"sqrt", 1, 0}, {"div", 0, 1}, {"rmsprop: sqrt + div", 1, 1},
      {"adadelta: 2 sqrt + div", 2, 1}, {"adam: sqrt + 2 div", 1, 2},
  };
  printf("float32 ns per element, one core (divide by the thread count for the floor)\n");
  for (unsigned m = 0; m < sizeof mixes / sizeof mixes[0]; ++m) {
    printf("%-24s avx2 %.3f", mixes[m].name, probe256(mixes[m].sqrts, mixes[m].divs));
#if defined(__AVX512F__)
    printf("   avx512 %.3f", probe512(mixes[m].sqrts, mixes[m].divs));
#endif
    printf("\n");
  }
  return 0;
}
