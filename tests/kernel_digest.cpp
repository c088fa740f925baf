// Prints a digest of every update kernel's results on fixed data, per kernel table (instruction
// set) and storage type, so that builds for different architectures, compilers or instruction
// sets can be compared without Python: tests/test_cross_arch.py compiles this with the host's
// compiler and with an aarch64 cross compiler (run under qemu), and requires equal digests.
//
// Data come from an integer generator and are converted exactly (integers below 2^24 scaled by a
// power of two), so every build starts from the same bits. Each kernel takes steps 1, 2, 3 and 37
// (so that the bias corrections' pow is not trivial) over arrays of 1, 7, 33 and 4099 elements
// with maximize off and on; every 7th gradient element is a zero, -0, or a value whose square is
// subnormal, tiny, near 1, huge or (in float32) infinite, so vectors mix them with ordinary
// lanes, and the second step adds an infinity and a NaN. The reductions and maps of gradient
// clipping are digested too. NaNs are canonicalised before hashing: their payloads are not part
// of the library's promise (x86 and Arm make different default NaNs).
//
//   g++ -O3 -std=c++17 -fno-math-errno -ffp-contract=off -Icsrc/include tests/kernel_digest.cpp
//       csrc/isa/*.cpp -o /tmp/kernel_digest && /tmp/kernel_digest        (one command)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fusedoptim/kernels.hpp"

using namespace fusedoptim;

namespace {

struct Generator {
  std::uint64_t state;
  std::uint32_t next() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<std::uint32_t>(state >> 33);
  }
  // Uniform in [-2, 2) on a grid of 2^-22: exact in float and double.
  template <class T>
  T value() {
    return T(static_cast<std::int32_t>(next() >> 8) - (1 << 23)) / T(1 << 22);
  }
};

struct Digest {
  std::uint64_t hash = 1469598103934665603ULL;
  template <class T>
  void add(const std::vector<T>& values) {
    for (T v : values) {
      unsigned char bytes[sizeof(T)];
      std::memcpy(bytes, &v, sizeof(T));
      if (v != v) std::memset(bytes, 0xAB, sizeof(T));
      for (unsigned char b : bytes) hash = (hash ^ b) * 1099511628211ULL;
    }
  }
};

// Factors for every 7th gradient element (|g| < 2 before): squares that are 0, subnormal, tiny,
// near 1, huge or infinite in float32; 1e-160's square is subnormal in float64 (in float32 it is
// a zero).
constexpr int kSpecialCount = 8;
template <class T>
constexpr T kSpecial[kSpecialCount] = {T(0), T(-0.0), T(1e-20), T(1e-15), T(1e-12), T(1),
                                       T(1e20), T(1e-160)};

// Equal bits, counting every NaN as equal (payloads are not promised; see the top).
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(a[i] != a[i] && b[i] != b[i]) && std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return false;
  return a.size() == b.size();
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "%s\n", what);
  std::exit(1);
}

template <class T, class Hyper>
std::uint64_t run(UpdateFn<T, Hyper> fn, const Hyper& hyper, int slots) {
  Digest digest;
  Generator gen{12345};
  for (std::int64_t n : {1, 7, 33, 4099}) {
    // Two copies: the second as a piece of a long call (call_share), which takes the kernels'
    // long-range walk (software prefetch, every square root on the unit) and must give the bits
    // of the first.
    std::vector<T> p(n), g(n), s0(n, T(0)), s1(n, T(0)), s2(n, T(0));
    for (T& x : p) x = gen.value<T>();
    std::vector<T> lp = p, ls0 = s0, ls1 = s1, ls2 = s2;
    for (int step : {1, 2, 3, 37}) {
      for (T& x : g) x = gen.value<T>();
      for (std::int64_t i = 3; i < n; i += 7) g[i] = kSpecial<T>[(i / 7) % kSpecialCount] * g[i];
      if (n > 11 && step == 2) {
        g[1] = T(1.0) / T(0.0);
        g[5] = T(0.0) / T(0.0);
      }
      const TensorPointers<T> t{p.data(), g.data(), slots > 0 ? s0.data() : nullptr,
                                slots > 1 ? s1.data() : nullptr, slots > 2 ? s2.data() : nullptr};
      fn(hyper, step, t, n);
      const TensorPointers<T> long_call{lp.data(), g.data(), slots > 0 ? ls0.data() : nullptr,
                                        slots > 1 ? ls1.data() : nullptr,
                                        slots > 2 ? ls2.data() : nullptr, std::int64_t{1} << 20};
      fn(hyper, step, long_call, n);
    }
    if (!same_bits(p, lp) || !same_bits(s0, ls0) || !same_bits(s1, ls1) || !same_bits(s2, ls2))
      fail("an update kernel's long-range walk gave other bits than its short one");
    digest.add(p);
    digest.add(s0);
    digest.add(s1);
    digest.add(s2);
  }
  return digest.hash;
}

template <class T>
void print_table(const char* isa, const char* dtype, const KernelTable<T>& k) {
  const auto line = [&](const std::string& name, std::uint64_t hash) {
    std::printf("%s %s %s %016llx\n", isa, dtype, name.c_str(), static_cast<unsigned long long>(hash));
  };
  for (int maximize = 0; maximize < 2; ++maximize) {
    const std::string m = maximize ? "-maximize" : "";
    for (int wd = 0; wd < 2; ++wd)
      for (int mom = 0; mom < 2; ++mom)
        for (int nest = 0; nest < 2; ++nest) {
          const SgdHyper h{0.05, mom ? 0.9 : 0.0, nest ? 0.0 : 0.3, wd ? 0.05 : 0.0, nest == 1,
                           maximize == 1};
          line("sgd" + std::to_string(wd) + std::to_string(mom) + std::to_string(nest) + m,
               run<T>(k.sgd[wd][mom][nest], h, 1));
        }
    for (int wd = 0; wd < 2; ++wd) {
      const AdagradHyper h{0.1, 0.01, wd ? 0.05 : 0.0, 1e-10, maximize == 1};
      line("adagrad" + std::to_string(wd) + m, run<T>(k.adagrad[wd], h, 1));
    }
    for (int wd = 0; wd < 2; ++wd)
      for (int mom = 0; mom < 2; ++mom)
        for (int centered = 0; centered < 2; ++centered) {
          const RmspropHyper h{0.01, 0.9, 1e-8, wd ? 0.05 : 0.0, mom ? 0.9 : 0.0, centered == 1,
                               maximize == 1};
          line("rmsprop" + std::to_string(wd) + std::to_string(mom) + std::to_string(centered) + m,
               run<T>(k.rmsprop[wd][mom][centered], h, 3));
        }
    for (int wd = 0; wd < 2; ++wd) {
      const AdadeltaHyper h{0.9, 0.85, 1e-6, wd ? 0.05 : 0.0, maximize == 1};
      line("adadelta" + std::to_string(wd) + m, run<T>(k.adadelta[wd], h, 2));
    }
    for (int decay = 0; decay < 3; ++decay)
      for (int ams = 0; ams < 2; ++ams) {
        const AdamHyper h{0.01, 0.8, 0.95, 1e-8, decay ? 0.05 : 0.0, ams == 1, maximize == 1,
                          decay == 2};
        line("adam" + std::to_string(decay) + std::to_string(ams) + m, run<T>(k.adam[decay][ams], h, 3));
      }
  }
}

// The gradient-clipping kernels: each norm (and |x|^p for three p) and the maps, on the data
// above with specials (one array of 4099 elements).
template <class T>
void print_reductions(const char* isa, const char* dtype, const KernelTable<T>& k) {
  Generator gen{777};
  std::vector<T> x(4099);
  for (T& v : x) v = gen.value<T>();
  const std::vector<T> plain = x;  // without the specials, whose huge values swamp the sums
  for (std::size_t i = 3; i < x.size(); i += 7) x[i] = kSpecial<T>[(i / 7) % kSpecialCount] * x[i];
  Digest digest;
  // Each norm as a short call and as part of a long one (which prefetches, up to the array's
  // end: the last 1,024 elements and more do not): the same sums, bit for bit.
  const auto size = static_cast<std::int64_t>(x.size());
  const std::vector<T>* const arrays[] = {&x, &plain};
  for (const std::vector<T>* data : arrays)
    for (int kind = 0; kind < 4; ++kind)
      for (double p : {0.5, 2.0, 3.0}) {
        const double r = k.norm[kind](data->data(), size, p, 0, size);
        const double in_long_call = k.norm[kind](data->data(), size, p, std::int64_t{1} << 20, size);
        if (!same_bits(std::vector<double>{r}, std::vector<double>{in_long_call}))
          fail("a norm's prefetching walk gave another sum than its plain one");
        digest.add(std::vector<double>{r});
      }
  std::vector<T> y = x;
  k.map[static_cast<int>(MapKind::Scale)](y.data(), static_cast<std::int64_t>(y.size()), 0.37, 0.0);
  digest.add(y);
  k.map[static_cast<int>(MapKind::Clamp)](y.data(), static_cast<std::int64_t>(y.size()), -0.5, 0.25);
  digest.add(y);
  for (T& v : y) v = v < T(0) ? -v : v;
  k.map[static_cast<int>(MapKind::Sqrt)](y.data(), static_cast<std::int64_t>(y.size()), 0.0, 0.0);
  digest.add(y);
  std::printf("%s %s reductions %016llx\n", isa, dtype, static_cast<unsigned long long>(digest.hash));
}

template <class Fill>
void print_isa(const char* isa, Fill fill) {
  KernelTable<float> f32{};
  KernelTable<double> f64{};
  fill(f32, f64);
  print_table(isa, "float32", f32);
  print_table(isa, "float64", f64);
  print_reductions(isa, "float32", f32);
  print_reductions(isa, "float64", f64);
}

}  // namespace

int main() {
  print_isa("baseline", fill_tables_baseline);
#if defined(FUSEDOPTIM_HAVE_X86_VARIANTS)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) print_isa("avx2", fill_tables_avx2);
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    print_isa("avx512", fill_tables_avx512);
#endif
  return 0;
}
