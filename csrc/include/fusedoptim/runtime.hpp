// Instruction-set dispatch, thread control, and the parallel driver shared by every kernel call.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "fusedoptim/kernels.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__SSE__) || defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define FUSEDOPTIM_HAVE_MXCSR 1
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
// of the tensor it falls in, so that no two threads write the same cache line of the parameter
// (state arrays may be aligned differently; sharing a line at a split costs speed, not results).
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

// The number of threads for a call over `total` elements: 1 below kMinElementsPerThread each.
inline int threads_for(std::int64_t total) {
  const std::int64_t wanted = total / kMinElementsPerThread;
  const int available = get_num_threads();
  return wanted < available ? static_cast<int>(wanted < 1 ? 1 : wanted) : available;
}

// Elements per thread of a call over `total` elements, as for_each_range splits it: the kernels'
// `call_share` (TensorPointers), which chooses their long-range path.
inline std::int64_t call_share(std::int64_t total) { return total / threads_for(total); }

// The caller's floating-point mode (x86 MXCSR: flush-to-zero, denormals-are-zero, rounding),
// which OpenMP worker threads do not inherit. Libraries (torch.set_flush_denormal, code built
// with -ffast-math) set it on the calling thread; workers adopt it for the parallel region and
// restore their own afterwards, so the bits of a result never depend on which thread computed
// them. The exception flags (the low 6 bits) are left alone.
struct CallerFloatingPointMode {
#if defined(FUSEDOPTIM_HAVE_MXCSR)
  unsigned int control = _mm_getcsr() & ~0x3Fu;
#endif
};

class WorkerFloatingPointMode {
 public:
  explicit WorkerFloatingPointMode(const CallerFloatingPointMode& caller) {
#if defined(FUSEDOPTIM_HAVE_MXCSR)
    saved_ = _mm_getcsr();
    _mm_setcsr(caller.control | (saved_ & 0x3Fu));
#else
    (void)caller;
#endif
  }
  ~WorkerFloatingPointMode() {
#if defined(FUSEDOPTIM_HAVE_MXCSR)
    _mm_setcsr((saved_ & ~0x3Fu) | (_mm_getcsr() & 0x3Fu));
#endif
  }
  WorkerFloatingPointMode(const WorkerFloatingPointMode&) = delete;
  WorkerFloatingPointMode& operator=(const WorkerFloatingPointMode&) = delete;

 private:
  unsigned int saved_ = 0;
};

// Whether a call's elements are shared between threads by their measured speed (1, the default)
// or equally (0: build with FUSEDOPTIM_EXTRA_CFLAGS="-DFO_ADAPTIVE_SPLIT=0" to compare).
#ifndef FO_ADAPTIVE_SPLIT
#define FO_ADAPTIVE_SPLIT 1
#endif

// How the calling thread's parallel calls share their elements between the threads of its team.
//
// Equal shares make a call wait for its slowest thread, and the threads are rarely equal: a worker
// starts its share after the calling thread (about 0.8 us here), and a core that the host or a
// hyperthread sibling slows down stays slow for a while (on a shared 2-vCPU VM one thread's half
// of a 1e5-element RMSprop call took 2 to 4 us longer than the other's, on average over tens of
// thousands of calls, and which thread varied from run to run). So after each call the shares are
// moved an eighth of the way towards those that would have made its threads end together, given
// each thread's measured start and elements per second. A call's results do not depend on the
// split (kernels/common.hpp), only its time does. Shares are kept per calling thread (the OpenMP
// team of one calling thread keeps its threads) and per team size (calls of different sizes get
// teams of different sizes), each between half and one and a half times an equal share, so one
// call that a preemption stretched cannot starve a thread.
class TeamBalance {
 public:
  struct Timing {
    double started;  // seconds, since the call entered the parallel region
    double ended;
    std::int64_t elements;
  };

  // The split points of `total` elements among `team` threads: cuts[0] = 0 <= cuts[1] <= ... <=
  // cuts[team] = total (before split_point moves them to cache-line boundaries).
  const std::vector<std::int64_t>& cuts(int team, std::int64_t total) {
    const std::vector<double>& share = shares(team);
    cuts_.resize(team + 1);
    double cumulative = 0.0;
    cuts_[0] = 0;
    for (int i = 1; i < team; ++i) {
      cumulative += share[i - 1];
      const auto cut = static_cast<std::int64_t>(static_cast<double>(total) * cumulative);
      cuts_[i] = std::min(total, std::max(cuts_[i - 1], cut));
    }
    cuts_[team] = total;
    return cuts_;
  }

  std::vector<Timing>& timings(int team) {
    timings_.assign(team, Timing{0.0, 0.0, 0});
    return timings_;
  }

  // Learns from the call whose timings() were filled in by its `team` threads.
  void learn(int team) {
    if (team < 2 || static_cast<int>(timings_.size()) != team) return;
    // Thread i, starting at d_i and taking r_i seconds per element, ends with the others at C
    // when given n_i = (C - d_i) / r_i elements, and sum n_i = N fixes C.
    double elements = 0.0, speed = 0.0, head_start = 0.0;
    for (const Timing& t : timings_) {
      const double busy = t.ended - t.started;
      if (t.elements <= 0 || !(busy > 0.0)) return;  // nothing to learn from this call
      const double rate = busy / static_cast<double>(t.elements);
      elements += static_cast<double>(t.elements);
      speed += 1.0 / rate;
      head_start += t.started / rate;
    }
    const double end = (elements + head_start) / speed;
    const double low = 0.5 / team, high = 1.5 / team;
    std::vector<double>& share = shares(team);
    for (int i = 0; i < team; ++i) {
      const Timing& t = timings_[i];
      const double rate = (t.ended - t.started) / static_cast<double>(t.elements);
      const double target = std::min(high, std::max(low, (end - t.started) / rate / elements));
      share[i] += (target - share[i]) * 0.125;
    }
    keep_within(share, low, high);
  }

  // Whether a call of the calling thread is using the shares (a body that called for_each_range
  // again would find it so, and split equally).
  bool in_use = false;

 private:
  std::vector<double>& shares(int team) {
    if (shares_.size() <= static_cast<std::size_t>(team)) shares_.resize(team + 1);
    std::vector<double>& share = shares_[team];
    if (static_cast<int>(share.size()) != team) share.assign(team, 1.0 / team);
    return share;
  }

  // Makes the shares sum to 1 within [low, high] (low * size <= 1 <= high * size): scales the ones
  // not yet held at a bound, holds at its bound any that crosses it, and repeats until none does.
  void keep_within(std::vector<double>& share, double low, double high) {
    held_.assign(share.size(), 0);
    for (std::size_t round = 0; round <= share.size(); ++round) {
      double fixed = 0.0, free = 0.0;
      for (std::size_t i = 0; i < share.size(); ++i) (held_[i] ? fixed : free) += share[i];
      if (!(free > 0.0)) break;
      const double scale = (1.0 - fixed) / free;
      bool crossed = false;
      for (std::size_t i = 0; i < share.size(); ++i) {
        if (held_[i]) continue;
        share[i] *= scale;
        if (share[i] < low || share[i] > high) {
          share[i] = share[i] < low ? low : high;
          held_[i] = 1;
          crossed = true;
        }
      }
      if (!crossed) break;
    }
  }

  std::vector<std::vector<double>> shares_;  // by team size
  std::vector<Timing> timings_;
  std::vector<std::int64_t> cuts_;
  std::vector<char> held_;
};

inline TeamBalance& calling_thread_balance() {
  static thread_local TeamBalance balance;
  return balance;
}

// Calls body(tensor, begin, end) over every element of every tensor, inside one parallel region:
// the elements of all tensors are split into one contiguous, cache-line-aligned range per thread
// (sized by TeamBalance), so a list of many small tensors costs one thread team, not one per
// tensor. Small calls run on the calling thread. The split never changes results (see
// kernels/common.hpp).
template <class Body>
void for_each_range(const std::vector<Extent>& extents, std::size_t element_size, Body&& body) {
  if (extents.empty()) return;
  std::vector<std::int64_t> starts(extents.size());
  std::int64_t total = 0;
  for (std::size_t t = 0; t < extents.size(); ++t) {
    starts[t] = total;
    total += extents[t].size;
  }
  const int threads = threads_for(total);
  if (threads <= 1) {
    for (std::size_t t = 0; t < extents.size(); ++t)
      if (extents[t].size > 0) body(t, std::int64_t{0}, extents[t].size);
    return;
  }
#if defined(_OPENMP)
  const CallerFloatingPointMode mode;
  // The calling thread's shares (equal ranges when a call of this thread is already using them,
  // a body that called for_each_range again, and in a build with FO_ADAPTIVE_SPLIT=0).
  TeamBalance& balance = calling_thread_balance();
  const bool adaptive = FO_ADAPTIVE_SPLIT && !balance.in_use;
  const std::int64_t* cuts = nullptr;
  TeamBalance::Timing* timings = nullptr;
  if (adaptive) {
    cuts = balance.cuts(threads, total).data();
    timings = balance.timings(threads).data();
    balance.in_use = true;
  }
  bool complete_team = true;
  using Clock = std::chrono::steady_clock;
  const Clock::time_point entered = adaptive ? Clock::now() : Clock::time_point{};
  const auto since_entered = [&entered] {
    return std::chrono::duration<double>(Clock::now() - entered).count();
  };
#pragma omp parallel num_threads(threads)
  {
    const double started = adaptive ? since_entered() : 0.0;
    const WorkerFloatingPointMode worker(mode);
    const std::int64_t team = omp_get_num_threads();
    const std::int64_t me = omp_get_thread_num();
    // A team smaller than asked for (an OpenMP limit) shares equally.
    const bool balanced = adaptive && team == threads;
    const auto cut = [&](std::int64_t i) { return balanced ? cuts[i] : total * i / team; };
    const SplitPoint first =
        me == 0 ? SplitPoint{0, 0} : split_point(extents, starts, cut(me), element_size);
    const SplitPoint last = me + 1 == team
                                ? SplitPoint{extents.size() - 1, extents.back().size}
                                : split_point(extents, starts, cut(me + 1), element_size);
    for (std::size_t t = first.tensor; t <= last.tensor && t < extents.size(); ++t) {
      const std::int64_t begin = t == first.tensor ? first.offset : 0;
      const std::int64_t end = t == last.tensor ? last.offset : extents[t].size;
      if (end > begin) body(t, begin, end);
    }
    if (balanced) {
      timings[me] = {started, since_entered(),
                     (starts[last.tensor] + last.offset) - (starts[first.tensor] + first.offset)};
    } else if (me == 0) {
      complete_team = false;
    }
  }
  if (adaptive) {
    balance.in_use = false;
    if (complete_team) balance.learn(threads);
  }
#else
  (void)element_size;
  for (std::size_t t = 0; t < extents.size(); ++t)
    if (extents[t].size > 0) body(t, std::int64_t{0}, extents[t].size);
#endif
}

// Deterministic parallel reduction helper: tensors are cut into fixed blocks of kReduceBlock
// elements (independent of the thread count); block results are combined in block order.
constexpr std::int64_t kReduceBlock = 1 << 15;

}  // namespace fusedoptim
