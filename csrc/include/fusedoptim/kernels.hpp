// Kernel declarations shared by the per-ISA kernel objects, the dispatcher and the bindings.
//
// A kernel updates one contiguous range [0, n) of one tensor. The driver (for_each_range in runtime.hpp) splits the
// elements of all tensors of a call into one balanced range per thread and calls the kernel for
// each piece. Hyperparameters arrive as doubles; each kernel derives its per-step scalars (bias
// corrections, 1 - beta, ...) once per call, in double, and rounds them once to the storage type.
//
// Options that change the update rule are template parameters resolved with `if constexpr`, so the
// inner loops carry no branches; the dispatcher indexes a table of instantiations.
#pragma once

#include <cstddef>
#include <cstdint>

// Faster copies of the kernels for AVX2+FMA and AVX-512 are compiled on x86-64 with GCC or Clang;
// elsewhere (or with -DFUSEDOPTIM_NO_ISA_VARIANTS) only the baseline copy exists.
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(FUSEDOPTIM_NO_ISA_VARIANTS)
#define FUSEDOPTIM_HAVE_X86_VARIANTS 1
#endif

namespace fusedoptim {

struct SgdHyper {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize;
};
struct AdagradHyper {
  double lr, lr_decay, weight_decay, eps;
  bool maximize;
};
struct RmspropHyper {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered, maximize;
};
struct AdadeltaHyper {
  double lr, rho, eps, weight_decay;
  bool maximize;
};
struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad, maximize, decoupled_weight_decay;
};

// How weight decay enters Adam: not at all, added to the gradient (L2), or applied to the
// parameter before the update (AdamW's decoupled decay).
enum class WeightDecay : int { None = 0, L2 = 1, Decoupled = 2 };

// The arrays of one tensor. Which state slots are used depends on the optimizer:
//   SGD: state0 = momentum_buffer;            AdaGrad: state0 = sum
//   RMSprop: state0 = square_avg, state1 = momentum_buffer, state2 = grad_avg
//   AdaDelta: state0 = square_avg, state1 = acc_delta
//   Adam: state0 = exp_avg, state1 = exp_avg_sq, state2 = max_exp_avg_sq
template <class T>
struct TensorPointers {
  T* param;
  const T* grad;
  T* state0;
  T* state1;
  T* state2;
  // Elements of the whole call per thread: a call this large streams its data from memory even
  // where each of its tensors is small, so the kernels take their long-range path (see
  // fo_for_lanes in kernels/lanes.hpp). 0: judge by the range alone.
  std::int64_t call_share = 0;
};

// Kernel entry points: `step` is the 1-based number of the step being taken for this tensor.
template <class T, class Hyper>
using UpdateFn = void (*)(const Hyper& hyper, std::int64_t step, const TensorPointers<T>& tensor,
                          std::int64_t n);

// Reductions and maps used by gradient clipping and the bandwidth probe.
// Partial results for deterministic reductions: sums in double, in a fixed order per block.
// call_share: elements of the whole call per thread, as in TensorPointers (long calls prefetch);
// readable: elements from x to the end of its array (n or more), the reach of that prefetch.
template <class T>
using ReduceFn = double (*)(const T* x, std::int64_t n, double p, std::int64_t call_share,
                            std::int64_t readable);
template <class T>
using MapFn = void (*)(T* x, std::int64_t n, double a, double b);
template <class T>
using TriadFn = void (*)(T* a, const T* b, const T* c, double s, std::int64_t n);
template <class T>
using StreamUpdateFn = void (*)(T* const* written, const T* read, double s, std::int64_t n);
template <class T>
using DividerFn = void (*)(T* a, const T* b, double divisor, std::int64_t n);

enum class NormKind : int { Two = 0, One = 1, Inf = 2, General = 3 };
enum class MapKind : int { Scale = 0, Clamp = 1, Sqrt = 2 };

template <class T>
struct KernelTable {
  // [weight_decay != 0][momentum != 0][nesterov]
  UpdateFn<T, SgdHyper> sgd[2][2][2];
  // [weight_decay != 0]
  UpdateFn<T, AdagradHyper> adagrad[2];
  // [weight_decay != 0][momentum > 0][centered]
  UpdateFn<T, RmspropHyper> rmsprop[2][2][2];
  // [weight_decay != 0]
  UpdateFn<T, AdadeltaHyper> adadelta[2];
  // [WeightDecay][amsgrad]
  UpdateFn<T, AdamHyper> adam[3][2];
  ReduceFn<T> norm[4];  // indexed by NormKind: sum x^2, sum |x|, max |x|, sum |x|^p
  MapFn<T> map[3];      // indexed by MapKind
  TriadFn<T> triad;     // a = b + s * c
  TriadFn<T> axpy;      // a = a + s * b (c unused)
  StreamUpdateFn<T> stream_update[4];  // [written - 1]: each written array += s * read
  DividerFn<T> divider[3][2];  // [square roots][divisions - 1] per element
  // Whether the update kernels compute square roots on the FMA units rather than the divider
  // (AVX-512 float32: kernels/sqrt_avx512.hpp); the benchmark's divider floor depends on it.
  bool sqrt_on_fma_units;
};

// Each kernel object (compiled for one instruction set) fills both tables.
void fill_tables_baseline(KernelTable<float>& f32, KernelTable<double>& f64);
#if defined(FUSEDOPTIM_HAVE_X86_VARIANTS)
void fill_tables_avx2(KernelTable<float>& f32, KernelTable<double>& f64);
void fill_tables_avx512(KernelTable<float>& f32, KernelTable<double>& f64);
#endif

}  // namespace fusedoptim
