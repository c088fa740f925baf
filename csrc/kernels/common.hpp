// Helpers for the kernel bodies. This file and the other kernel headers are included inside an
// anonymous namespace of each per-ISA object (csrc/isa/*.cpp), after that object has switched the
// target instruction set, so they must not include any header themselves: everything they use is
// a compiler builtin or comes from fusedoptim/kernels.hpp, included before the switch.
//
// Lanes: the update kernels write their per-element math once, as a function template over the
// lane type L: T for one element, or FoLanes<T>::type, a vector of FoLanes<T>::width elements,
// where the object defines one (the AVX-512 object: float32 in sqrt_avx512.hpp, whose square root
// runs on the FMA units, and float64 in vectors_x86.hpp; the AVX2 object: both types, in
// vectors_x86.hpp). The kernel runs the vector lanes over the bulk of its range and single
// elements over the rest (fo_for_lanes, lanes.hpp), with software prefetch on long ranges;
// elsewhere (the baseline object) it runs single elements only, and the compiler vectorises that
// loop. fo_load and fo_store move one lane.
//
// Bitwise reproducibility: the build compiles with -ffp-contract=off, so the vectorised body, the
// scalar tail and every instruction-set variant perform the same IEEE operations in the same order
// (division and square root are correctly rounded everywhere). Results therefore do not depend on
// the thread count, on where a thread's range starts, or on the instruction set chosen.

#if defined(_MSC_VER) && !defined(__clang__)
#define FO_RESTRICT __restrict
#else
#define FO_RESTRICT __restrict__
#endif

template <class T>
struct FoLanes {
  static constexpr int width = 1;
  // Whether the vector lanes compute square roots on the FMA units (AVX-512 float32 only).
  static constexpr bool software_sqrt = false;
  using type = T;
};

template <class L, class T>
inline L fo_load(const T* p) {
  if constexpr (sizeof(L) == sizeof(T)) {
    return *p;
  } else {
    L v;
    __builtin_memcpy(&v, p, sizeof(L));
    return v;
  }
}

template <class L, class T>
inline void fo_store(T* p, L v) {
  if constexpr (sizeof(L) == sizeof(T)) {
    *p = v;
  } else {
    __builtin_memcpy(p, &v, sizeof(L));
  }
}

inline float fo_sqrt(float x) { return __builtin_sqrtf(x); }
inline double fo_sqrt(double x) { return __builtin_sqrt(x); }
// Always the hardware instruction, also for vector lanes (where fo_sqrt may use the FMA units):
// the kernels give it part of their square roots to balance the two units (lanes.hpp).
inline float fo_sqrt_unit(float x) { return __builtin_sqrtf(x); }
inline double fo_sqrt_unit(double x) { return __builtin_sqrt(x); }

// max(a, b) that propagates NaN from either side, like numpy.maximum and torch.maximum.
template <class T>
inline T fo_nan_max(T a, T b) {
  return (b > a || b != b) ? b : a;
}

// 1 - beta ** step, computed in double. A multi-tensor call asks for the same value once per
// tensor piece, and pow costs more than updating a small tensor, so the last result is remembered.
inline double fo_one_minus_pow(double beta, std::int64_t step) {
  struct Memo {
    double beta = -1.0;
    std::int64_t step = -1;
    double value = 0.0;
  };
  static thread_local Memo memo[2];  // Adam asks for two betas alternately
  for (Memo& m : memo)
    if (m.beta == beta && m.step == step) return m.value;
  Memo& slot = memo[0].step == step ? memo[1] : memo[0];
  slot = {beta, step, 1.0 - __builtin_pow(beta, static_cast<double>(step))};
  return slot.value;
}
