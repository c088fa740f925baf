// Chooses the kernel variant for this CPU once, at import, and holds the thread setting.
#include <atomic>
#include <cstdlib>
#include <stdexcept>

#include "fusedoptim/runtime.hpp"

namespace fusedoptim {
namespace {

Dispatch g_dispatch;
bool g_initialised = false;
std::atomic<int> g_num_threads{1};

bool cpu_has_avx2() {
#if defined(FUSEDOPTIM_HAVE_X86_VARIANTS)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#if defined(FUSEDOPTIM_HAVE_X86_VARIANTS)
  __builtin_cpu_init();
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512cd");
#else
  return false;
#endif
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

}  // namespace

void init_dispatch() {
  if (g_initialised) return;
  Dispatch d;
  d.compiled = {"baseline"};
  d.supported = {"baseline"};
#if defined(FUSEDOPTIM_HAVE_X86_VARIANTS)
  d.compiled.push_back("avx2");
  d.compiled.push_back("avx512");
  if (cpu_has_avx2()) d.supported.push_back("avx2");
  if (cpu_has_avx512()) d.supported.push_back("avx512");
#endif
  std::string wanted = d.supported.back();
  if (const char* forced = std::getenv("FUSEDOPTIM_ISA"); forced != nullptr && *forced != '\0') {
    wanted = forced;
    bool known = false, usable = false;
    for (const auto& name : d.compiled) known = known || name == wanted;
    for (const auto& name : d.supported) usable = usable || name == wanted;
    if (!known)
      throw std::runtime_error("FUSEDOPTIM_ISA=" + wanted + " is not a kernel variant of this build (" +
                               join(d.compiled) + ")");
    if (!usable)
      throw std::runtime_error("FUSEDOPTIM_ISA=" + wanted + " is not supported by this CPU; it supports: " +
                               join(d.supported));
  }
  d.isa = wanted;
  if (wanted == "baseline") fill_tables_baseline(d.f32, d.f64);
#if defined(FUSEDOPTIM_HAVE_X86_VARIANTS)
  else if (wanted == "avx2") fill_tables_avx2(d.f32, d.f64);
  else if (wanted == "avx512") fill_tables_avx512(d.f32, d.f64);
#endif
  g_dispatch = std::move(d);
#if defined(_OPENMP)
  g_num_threads = omp_get_max_threads();
#endif
  g_initialised = true;
}

const Dispatch& dispatch() { return g_dispatch; }

int get_num_threads() {
#if defined(_OPENMP)
  return g_num_threads.load(std::memory_order_relaxed);
#else
  return 1;
#endif
}

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("set_num_threads: n must be >= 1, got " + std::to_string(n));
  g_num_threads.store(n, std::memory_order_relaxed);
}

}  // namespace fusedoptim
