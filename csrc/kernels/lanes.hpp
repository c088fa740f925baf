// How the kernels with a square root walk their range (fo_for_lanes) and which square root each
// group of lanes takes (fo_sqrt_on). Included by all.hpp after the object's vector lanes
// (sqrt_avx512.hpp, vectors_x86.hpp), whose fo_sqrt overloads the templates below must see.

// One vector in every FO_UNIT_EVERY_<KERNEL> takes its square root on the square-root unit (0:
// none, 1: all), the others on the FMA units; see fo_for_lanes. Only the lanes with a software
// square root (AVX-512 float32) tell the two apart; the others take the unit's for both. AdaDelta
// takes the root of its denominator on the unit and its numerator's on the FMA units in every
// vector. The values were chosen on this project's benchmark machine with benchmarks/ab_core.py,
// in cache on 2 threads (benchmarks/RESULTS.md, section 4); another CPU may balance its units
// differently: build with, e.g., FUSEDOPTIM_EXTRA_CFLAGS="-DFO_UNIT_EVERY_RMSPROP=2" to compare.
// Results are the same bits.
#ifndef FO_UNIT_EVERY_RMSPROP
#define FO_UNIT_EVERY_RMSPROP 3
#endif
#ifndef FO_UNIT_EVERY_RMSPROP_CENTERED
#define FO_UNIT_EVERY_RMSPROP_CENTERED 3
#endif
#ifndef FO_UNIT_EVERY_ADAGRAD
#define FO_UNIT_EVERY_ADAGRAD 3
#endif
#ifndef FO_UNIT_EVERY_ADAM
#define FO_UNIT_EVERY_ADAM 6
#endif
#ifndef FO_UNIT_EVERY_ADADELTA
#define FO_UNIT_EVERY_ADADELTA 1
#endif

// Which square root one group of lanes takes: fo_sqrt_unit where kOnUnit, else fo_sqrt (for
// vector lanes on the FMA units where the object defines that; see sqrt_avx512.hpp).
template <bool kOnUnit, class L>
inline L fo_sqrt_on(L x) {
  if constexpr (kOnUnit)
    return fo_sqrt_unit(x);
  else
    return fo_sqrt(x);
}

// A group of lanes as fo_for_lanes hands it to the kernel's body: its type (T, or the object's
// vector of T where kVector) and its square root. (The vector type is looked up here rather than
// passed as a template argument, which would drop its attributes: -Wignored-attributes.)
// every_root_on_unit: all of the group's square roots go to the unit, where a kernel has more
// than one (AdaDelta); set where the FMA-unit sequence is not exact (see fo_for_lanes).
template <class T, bool kVector, bool kOnUnit, bool kPrefetch = false, bool kEvery = false>
struct FoLane {
  using type = T;
  static constexpr bool on_unit = kOnUnit;
  static constexpr bool every_root_on_unit = true;
  static constexpr bool prefetch = false;
};
template <class T, bool kOnUnit, bool kPrefetch, bool kEvery>
struct FoLane<T, true, kOnUnit, kPrefetch, kEvery> {
  using type = typename FoLanes<T>::type;
  static constexpr bool on_unit = kOnUnit;
  static constexpr bool every_root_on_unit = kEvery;
  static constexpr bool prefetch = kPrefetch;
};

// Software prefetch from the vector lanes: where a call's range is long (FO_PREFETCH_MIN
// elements or more, too much for the core's L2 cache with the update's several arrays), each
// vector asks for the line FO_PREFETCH_AHEAD elements ahead in each of the kernel's arrays. Out
// of cache the hardware prefetchers alone keep too few lines in flight: with it every kernel
// and the bandwidth probe itself (stream_update, which walks like the kernels) run faster
// (benchmarks/RESULTS.md, section 1). In cache the prefetch instructions only cost issue slots
// (3% to 13% of the step at 1e5 elements), hence the threshold, taken once per call.
#ifndef FO_PREFETCH_AHEAD
#define FO_PREFETCH_AHEAD 512
#endif
// Long ranges (FO_PREFETCH_MIN elements or more) take every square root on the square-root unit
// (1) or split them as in cache (0). Streaming from memory, each instruction per vector costs
// bandwidth (the window of instructions in flight holds fewer lines ahead), and the FMA-unit
// root is about 13 instructions where vsqrtps is one, while the divider has time to spare:
// every root on the unit took 0.92 to 0.96 of the time of the in-cache split out of cache at
// 1e7 elements (AdaDelta's two roots: 0.91 to 0.94), 0.96 to 1.01 at 1e6, and 0.96 to 1.07
// with 1e6 elements hot in the L3 cache (benchmarks/RESULTS.md, section 1). The results are
// the same bits either way.
#ifndef FO_LONG_RANGE_ON_UNIT
#define FO_LONG_RANGE_ON_UNIT 1
#endif
#ifndef FO_PREFETCH_MIN
#define FO_PREFETCH_MIN 131072
#endif
template <class Lane, class... Arrays>
inline void fo_prefetch(std::int64_t i, const Arrays*... arrays) {
  // Only lanes whose line ahead lies inside the call's range prefetch (fo_for_lanes_with stops
  // them FO_PREFETCH_AHEAD elements before its end: the lines past it are another thread's), so
  // no address needs clamping: out of cache every instruction per vector costs bandwidth
  // (benchmarks/RESULTS.md, section 1).
  if constexpr (Lane::prefetch) (__builtin_prefetch(arrays + i + FO_PREFETCH_AHEAD, 0, 2), ...);
}

// The vectors of [i, end) in groups of kUnitEvery (see fo_for_lanes_with); returns where the
// vectors stopped (fewer than a vector's width before end).
template <class T, int kUnitEvery, class Unit, class Fma, class Body>
inline std::int64_t fo_walk_vectors(std::int64_t i, std::int64_t end, const Body& body) {
  constexpr std::int64_t kWidth = FoLanes<T>::width;
  if constexpr (kUnitEvery == 1) {
    for (; i + kWidth <= end; i += kWidth) body(Unit{}, i);
  } else {
    if constexpr (kUnitEvery > 1) {
      for (; i + kUnitEvery * kWidth <= end; i += kUnitEvery * kWidth) {
        body(Unit{}, i);
        for (std::int64_t k = 1; k < kUnitEvery; ++k) body(Fma{}, i + k * kWidth);
      }
    }
    for (; i + kWidth <= end; i += kWidth) body(Fma{}, i);
  }
  return i;
}

// Runs body(FoLane<T, kVector, on_unit, prefetch>{}, i) over [0, n): vectors of FoLanes<T>::width
// elements over the bulk, single elements over the rest. Where the lanes have a software square
// root, one vector in every kUnitEvery (the first of each group) takes its square root on the
// square-root unit and the others on the FMA units (kUnitEvery 0: none on the unit; 1: all). The
// two give the same bits, so the choice only balances the work between the units: all on the FMA
// units leaves the divider idle while the FMA ports saturate (benchmarks/RESULTS.md, section 4).
// fo_for_lanes picks the variant with software prefetch for long ranges (see fo_prefetch): its
// vectors prefetch up to FO_PREFETCH_AHEAD elements before the end, the last ones do not.
template <class T, int kUnitEvery, bool kPrefetch, class Body, bool kEvery = false>
inline void fo_for_lanes_with(std::int64_t n, const Body& body) {
  constexpr std::int64_t kWidth = FoLanes<T>::width;
  using Unit = FoLane<T, true, true, false, kEvery>;
  using Fma = FoLane<T, true, false, false>;
  std::int64_t i = 0;
  if constexpr (kWidth > 1) {
    if constexpr (kPrefetch) {
      using UnitAhead = FoLane<T, true, true, true, kEvery>;
      using FmaAhead = FoLane<T, true, false, true>;
      i = fo_walk_vectors<T, kUnitEvery, UnitAhead, FmaAhead>(i, n - FO_PREFETCH_AHEAD, body);
    }
    i = fo_walk_vectors<T, kUnitEvery, Unit, Fma>(i, n, body);
  }
  for (; i < n; ++i) body(FoLane<T, false, true>{}, i);
}

// fo_for_lanes over a range of n elements that is part of a call of call_share elements per
// thread: the long-range path (prefetch within the range, every square root on the unit) when
// either is long, since a call that large streams its data from memory whatever the size of
// each piece (500 tensors of 2,000 elements: 0.86 to 0.89 of the time out of cache; see
// benchmarks/RESULTS.md, "What is still open").
template <class T, int kUnitEvery, class Body>
inline void fo_for_lanes(std::int64_t n, std::int64_t call_share, const Body& body) {
  if constexpr (FoLanes<T>::software_sqrt) {
    if (!FoLanes<T>::exact_sqrt()) {  // not round-to-nearest: every root on the unit
      fo_for_lanes_with<T, 1, false, Body, true>(n, body);
      return;
    }
  }
  if constexpr (FoLanes<T>::width > 1 && FO_PREFETCH_AHEAD > 0) {
    if ((call_share > n ? call_share : n) >= FO_PREFETCH_MIN) {
      if constexpr (FO_LONG_RANGE_ON_UNIT && kUnitEvery != 0)
        fo_for_lanes_with<T, 1, true, Body, true>(n, body);
      else
        fo_for_lanes_with<T, kUnitEvery, true>(n, body);
      return;
    }
  }
  fo_for_lanes_with<T, kUnitEvery, false>(n, body);
}

template <class T, int kUnitEvery, class Body>
inline void fo_for_lanes(std::int64_t n, const Body& body) {
  fo_for_lanes<T, kUnitEvery>(n, n, body);
}
