// Reductions for gradient norms, in-place maps for clipping, and the STREAM triad used to measure
// memory bandwidth.
//
// Norm partial sums are accumulated in double in kLanes independent lanes, lane j taking elements
// j, j + kLanes, ... and the lanes are then added in a fixed tree. The order of operations is thus
// fixed by the data alone: the same bits for every instruction set, and, because the driver always
// splits tensors into the same blocks, for every thread count.
constexpr int kLanes = 16;

inline double fo_combine_lanes(double* acc) {
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int j = 0; j < width; ++j) acc[j] = acc[j] + acc[j + width];
  return acc[0];
}

// Out of cache a norm is one read stream, and the hardware prefetchers alone kept it at 13 to 16
// GB/s on this project's machine (2 threads, 1e7 float32), well below what the update kernels
// stream: where a call is long (as for the kernels, FO_PREFETCH_MIN elements or more per thread;
// norm_walk), each group of kLanes elements also asks for the lines kNormPrefetchAhead elements
// ahead, which took it to 20 to 25 GB/s (benchmarks/RESULTS.md, section 1). In cache that only
// costs issue slots. The lines asked for may lie past the block, in the array's next block
// (usually this thread's next: the blocks are split statically), but never past the array's end
// (`readable`: the elements from the block's start to the array's end), so that no address is
// formed beyond it. The sums are the same either way.
constexpr std::int64_t kNormPrefetchAhead = 1024;

// The lines kNormPrefetchAhead elements past a group of kLanes elements starting at x.
template <class T>
inline void fo_prefetch_norm(const T* x) {
  constexpr int kLine = 64 / static_cast<int>(sizeof(T));
  for (int k = 0; k < kLanes; k += kLine) __builtin_prefetch(x + kNormPrefetchAhead + k, 0, 2);
}

// One element's contribution to lane acc: x^2 and |x| summed, |x| maxed (NaN anywhere gives NaN,
// as torch's inf-norm does).
template <fusedoptim::NormKind kKind>
inline double fo_norm_step(double acc, double v) {
  if constexpr (kKind == fusedoptim::NormKind::Two)
    return acc + v * v;
  else if constexpr (kKind == fusedoptim::NormKind::One)
    return acc + __builtin_fabs(v);
  else
    return fo_nan_max(acc, __builtin_fabs(v));
}

// The 2-, 1- and inf-norm's value over one block: sum x^2, sum |x| or max |x|. Groups of kLanes
// elements whose lines ahead lie within the array prefetch them (kPrefetch), the rest do not.
template <class T, fusedoptim::NormKind kKind, bool kPrefetch>
double norm_block(const T* FO_RESTRICT x, std::int64_t n, std::int64_t readable) {
  double acc[kLanes] = {};
  std::int64_t i = 0;
  // (The group's loop is written out in each place: as a lambda with the count as an argument,
  // GCC 12 no longer vectorised it, and the prefetching walk lost a third of its bandwidth.)
  if constexpr (kPrefetch) {
    const std::int64_t stop = readable - kNormPrefetchAhead < n ? readable - kNormPrefetchAhead : n;
    for (; i + kLanes <= stop; i += kLanes) {
      fo_prefetch_norm(x + i);
      for (int j = 0; j < kLanes; ++j) acc[j] = fo_norm_step<kKind>(acc[j], static_cast<double>(x[i + j]));
    }
  }
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] = fo_norm_step<kKind>(acc[j], static_cast<double>(x[i + j]));
  for (int j = 0; i + j < n; ++j) acc[j] = fo_norm_step<kKind>(acc[j], static_cast<double>(x[i + j]));
  if constexpr (kKind != fusedoptim::NormKind::Inf) return fo_combine_lanes(acc);
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int j = 0; j < width; ++j) acc[j] = fo_nan_max(acc[j], acc[j + width]);
  return acc[0];
}

// norm_block with the software prefetch where the call is long (see kNormPrefetchAhead).
template <class T, fusedoptim::NormKind kKind>
double norm_walk(const T* x, std::int64_t n, double /*p*/, std::int64_t call_share,
                 std::int64_t readable) {
  if (call_share >= FO_PREFETCH_MIN) return norm_block<T, kKind, true>(x, n, readable);
  return norm_block<T, kKind, false>(x, n, readable);
}

// sum |x|^p for a general p (slow path: one pow per element, so no prefetch).
template <class T>
double norm_sum_pow(const T* FO_RESTRICT x, std::int64_t n, double p, std::int64_t /*call_share*/,
                    std::int64_t /*readable*/) {
  double acc[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j)
      acc[j] = acc[j] + __builtin_pow(__builtin_fabs(static_cast<double>(x[i + j])), p);
  for (int j = 0; i + j < n; ++j)
    acc[j] = acc[j] + __builtin_pow(__builtin_fabs(static_cast<double>(x[i + j])), p);
  return fo_combine_lanes(acc);
}

template <class T>
void map_scale(T* FO_RESTRICT x, std::int64_t n, double a, double /*b*/) {
  const T factor = T(a);
  for (std::int64_t i = 0; i < n; ++i) x[i] = x[i] * factor;
}

// x = sqrt(x) with the update kernels' square root (on AVX-512 float32, the FMA units' one, where
// the rounding mode lets it be exact: fo_for_lanes decides, as for the kernels), so that a test
// can compare it with the hardware instruction over every input.
template <class T>
void map_sqrt(T* FO_RESTRICT x, std::int64_t n, double /*a*/, double /*b*/) {
  fo_for_lanes<T, 0>(n, [&](auto lane, std::int64_t i) {
    using Lane = decltype(lane);
    fo_store(x + i, fo_sqrt_on<Lane::on_unit>(fo_load<typename Lane::type>(x + i)));
  });
}

// Clamp to [lo, hi]; NaN stays NaN, as with torch.clamp_.
template <class T>
void map_clamp(T* FO_RESTRICT x, std::int64_t n, double a, double b) {
  const T lo = T(a), hi = T(b);
  for (std::int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    x[i] = v < lo ? lo : (v > hi ? hi : v);
  }
}

// a += s * b: the read-modify-write pattern of the optimizer kernels, with no write-allocate traffic.
template <class T>
void stream_axpy(T* FO_RESTRICT a, const T* FO_RESTRICT b, const T* FO_RESTRICT /*unused*/, double s,
                 std::int64_t n) {
  const T scalar = T(s);
  for (std::int64_t i = 0; i < n; ++i) a[i] = a[i] + scalar * b[i];
}

// w[k] += s * g for each of the kWritten arrays w: reads kWritten + 1 arrays and writes kWritten,
// the traffic of an update with kWritten - 1 states (1: SGD; 2: AdaGrad, RMSprop, SGD momentum;
// 3: Adam, AdaDelta, centered RMSprop; 4: Adam amsgrad), with the least arithmetic, walked as
// the kernels walk their range (fo_for_lanes, with their software prefetch on long ranges). The
// benchmark's per-case bandwidth probe: more streams reach a higher bandwidth than stream_axpy's
// three (benchmarks/RESULTS.md), so each update is held to the bandwidth of its own pattern.
template <class T, int kWritten>
void stream_update(T* const* w, const T* FO_RESTRICT g, double s, std::int64_t n) {
  static_assert(kWritten >= 1 && kWritten <= 4, "1 to 4 written arrays");
  const T scalar = T(s);
  T* FO_RESTRICT w0 = w[0];
  T* FO_RESTRICT w1 = kWritten > 1 ? w[1] : nullptr;
  T* FO_RESTRICT w2 = kWritten > 2 ? w[2] : nullptr;
  T* FO_RESTRICT w3 = kWritten > 3 ? w[3] : nullptr;
  fo_for_lanes<T, 0>(n, [&](auto lane, std::int64_t i) {
    using Lane = decltype(lane);
    using L = typename Lane::type;
    if constexpr (kWritten == 1) fo_prefetch<Lane>(i, g, w0);
    if constexpr (kWritten == 2) fo_prefetch<Lane>(i, g, w0, w1);
    if constexpr (kWritten == 3) fo_prefetch<Lane>(i, g, w0, w1, w2);
    if constexpr (kWritten == 4) fo_prefetch<Lane>(i, g, w0, w1, w2, w3);
    const L x = scalar * fo_load<L>(g + i);
    fo_store(w0 + i, fo_load<L>(w0 + i) + x);
    if constexpr (kWritten > 1) fo_store(w1 + i, fo_load<L>(w1 + i) + x);
    if constexpr (kWritten > 2) fo_store(w2 + i, fo_load<L>(w2 + i) + x);
    if constexpr (kWritten > 3) fo_store(w3 + i, fo_load<L>(w3 + i) + x);
  });
}

template <class T>
void stream_triad(T* FO_RESTRICT a, const T* FO_RESTRICT b, const T* FO_RESTRICT c, double s,
                  std::int64_t n) {
  const T scalar = T(s);
  for (std::int64_t i = 0; i < n; ++i) a[i] = b[i] + scalar * c[i];
}

// The square-root and division units' issue rate (a compute floor for the benchmark): per element,
// kSqrts square roots and kDivisions divisions, as many as RMSprop and AdaGrad (1, 1), AdaDelta
// (2, 1) and Adam (1, 2) perform on the divider, or (0, 1) and (0, 2) where the kernels compute
// square roots on the FMA units (AVX-512 float32), and no other work the units wait on. Elements
// are independent, so the loop vectorises like the update kernels and its time is the units'
// throughput. The square roots here are always the hardware's. a stays near 1 when a and b start
// in [1, 2) and divisor is 1 (the benchmark's): a <- b / sqrt(a) (or its variants) converges to
// b^(2/3) (or b^(1/3)), and a <- b / a alternates between a and b / a, whatever the repeats,
// never a subnormal, infinity or NaN. Another divisor lets a test tell the second division from
// none.
template <class T, int kSqrts, int kDivisions>
void divider_probe(T* FO_RESTRICT a, const T* FO_RESTRICT b, double divisor, std::int64_t n) {
  const T c = T(divisor);
  for (std::int64_t i = 0; i < n; ++i) {
    const T root = kSqrts >= 1 ? fo_sqrt(a[i]) : a[i];
    const T numerator = kSqrts == 2 ? fo_sqrt(b[i]) : b[i];
    const T denominator = kDivisions == 2 ? root / c : root;
    a[i] = numerator / denominator;
  }
}
