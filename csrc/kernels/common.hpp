// Helpers for the kernel bodies. This file and the other kernel headers are included inside an
// anonymous namespace of each per-ISA object (csrc/isa/*.cpp), after that object has switched the
// target instruction set, so they must not include any header themselves: everything they use is
// a compiler builtin or comes from fusedoptim/kernels.hpp, included before the switch.
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

inline float fo_sqrt(float x) { return __builtin_sqrtf(x); }
inline double fo_sqrt(double x) { return __builtin_sqrt(x); }

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
