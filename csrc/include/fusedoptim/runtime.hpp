// Instruction-set dispatch, thread control, and the parallel driver shared by every kernel call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fusedoptim/kernels.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fusedoptim {

struct Dispatch {
  std::string isa;                     // the variant in use: "baseline", "avx2" or "avx512"
  std::vector<std::string> supported;  // variants compiled in and supported by this CPU
  std::vector<std::string> compiled;   // variants compiled in
  KernelTable<float> f32;
  KernelTable<double> f64;
};

// Chooses the variant once: the best the CPU supports, or the one named by the environment
// variable FUSEDOPTIM_ISA. Throws std::runtime_error for an unknown or unsupported name.
void init_dispatch();
const Dispatch& dispatch();

template <class T>
const KernelTable<T>& kernels();
template <>
inline const KernelTable<float>& kernels<float>() { return dispatch().f32; }
template <>
inline const KernelTable<double>& kernels<double>() { return dispatch().f64; }

int get_num_threads();
void set_num_threads(int n);  // n >= 1; without OpenMP the kernels always run on one thread

// Below this many elements per thread a call does not start (or wake) more threads.
constexpr std::int64_t kMinElementsPerThread = 1 << 14;
constexpr std::int64_t kCacheLine = 64;

// One tensor of a multi-tensor call, as the driver sees it.
struct Extent {
  std::int64_t size;        // elements
  std::uintptr_t address;   // of the parameter's first element, to align split points
};

// Split point of the concatenated element space, moved forward to the next cache-line boundary
// of the tensor it falls in, so that no two threads write the same cache line.
struct SplitPoint {
  std::size_t tensor;
  std::int64_t offset;
};

inline SplitPoint split_point(const std::vector<Extent>& extents,
                              const std::vector<std::int64_t>& starts, std::int64_t global,
                              std::size_t element_size) {
  // The last tensor whose start is <= global (starts is sorted and begins with 0).
  std::size_t lo = 0, hi = extents.size();
  while (hi - lo > 1) {
    const std::size_t mid = (lo + hi) / 2;
    if (starts[mid] <= global) lo = mid;
    else hi = mid;
  }
  std::int64_t offset = global - starts[lo];
  const std::uintptr_t address = extents[lo].address + static_cast<std::uintptr_t>(offset) * element_size;
  const std::uintptr_t misalignment = address % kCacheLine;
  if (misalignment != 0 && element_size != 0 && (kCacheLine - misalignment) % element_size == 0)
    offset += static_cast<std::int64_t>((kCacheLine - misalignment) / element_size);
  if (offset > extents[lo].size) offset = extents[lo].size;
  return {lo, offset};
}

// Calls body(tensor, begin, end) over every element of every tensor, inside one parallel region:
// the elements of all tensors are split into one contiguous, cache-line-aligned range per thread,
// so a list of many small tensors costs one thread team, not one per tensor. Small calls run on
// the calling thread. The split never changes results (see kernels/common.hpp).
template <class Body>
void for_each_range(const std::vector<Extent>& extents, std::size_t element_size, Body&& body) {
  if (extents.empty()) return;
  std::vector<std::int64_t> starts(extents.size());
  std::int64_t total = 0;
  for (std::size_t t = 0; t < extents.size(); ++t) {
    starts[t] = total;
    total += extents[t].size;
  }
  std::int64_t threads = total / kMinElementsPerThread;
  if (threads > get_num_threads()) threads = get_num_threads();
  if (threads <= 1) {
    for (std::size_t t = 0; t < extents.size(); ++t)
      if (extents[t].size > 0) body(t, std::int64_t{0}, extents[t].size);
    return;
  }
#if defined(_OPENMP)
#pragma omp parallel num_threads(static_cast<int>(threads))
  {
    const std::int64_t team = omp_get_num_threads();
    const std::int64_t me = omp_get_thread_num();
    const SplitPoint first = me == 0 ? SplitPoint{0, 0}
                                     : split_point(extents, starts, total * me / team, element_size);
    const SplitPoint last = me + 1 == team
                                ? SplitPoint{extents.size() - 1, extents.back().size}
                                : split_point(extents, starts, total * (me + 1) / team, element_size);
    for (std::size_t t = first.tensor; t <= last.tensor && t < extents.size(); ++t) {
      const std::int64_t begin = t == first.tensor ? first.offset : 0;
      const std::int64_t end = t == last.tensor ? last.offset : extents[t].size;
      if (end > begin) body(t, begin, end);
    }
  }
#endif
}

// Deterministic parallel reduction helper: tensors are cut into fixed blocks of kReduceBlock
// elements (independent of the thread count); block results are combined in block order.
constexpr std::int64_t kReduceBlock = 1 << 15;

}  // namespace fusedoptim
