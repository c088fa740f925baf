// Drives fusedoptim::for_each_range (csrc/include/fusedoptim/runtime.hpp) with OpenMP teams of 2 to
// 6 threads, each after its shares were pushed to the bounds by made-up timings, over lists of
// tensors of 0, 1, 17 and random sizes, and counts how often each element is visited; then checks
// that a call learns from the time its threads took (one thread made slower on purpose) and that
// a body calling for_each_range again still covers everything. Prints one line per check, which
// tests/test_threads_and_isa.py reads. Compiled with -fopenmp; this file defines the thread count
// that fusedoptim's dispatch.cpp defines in the module.
#include <omp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "fusedoptim/runtime.hpp"

namespace {
int g_threads = 2;
}

int fusedoptim::get_num_threads() { return g_threads; }

using fusedoptim::Extent;
using fusedoptim::TeamBalance;

namespace {

// Pushes the calling thread's shares for `team` towards one extreme: thread `slow` very slow.
void skew(int team, int slow) {
  TeamBalance& balance = fusedoptim::calling_thread_balance();
  for (int c = 0; c < 100; ++c) {
    const std::vector<std::int64_t> cuts = balance.cuts(team, 1 << 20);
    std::vector<TeamBalance::Timing>& timings = balance.timings(team);
    for (int i = 0; i < team; ++i) {
      const std::int64_t n = cuts[i + 1] - cuts[i];
      timings[i] = {0.0, (i == slow ? 50e-9 : 1e-9) * static_cast<double>(n), n};
    }
    balance.learn(team);
  }
}

// Every element of `sizes` visited once by for_each_range? Returns the number of elements
// visited other than once.
template <class Extra>
long long wrong_visits(const std::vector<std::int64_t>& sizes, Extra&& extra) {
  std::vector<std::vector<std::atomic<int>>> visits;
  std::vector<std::vector<float>> data;
  std::vector<Extent> extents;
  visits.reserve(sizes.size());
  for (std::int64_t size : sizes) {
    visits.emplace_back(static_cast<std::size_t>(size));
    data.emplace_back(static_cast<std::size_t>(size) + 16);
  }
  for (std::size_t t = 0; t < sizes.size(); ++t)
    extents.push_back({sizes[t], reinterpret_cast<std::uintptr_t>(data[t].data() + t % 16)});
  fusedoptim::for_each_range(extents, sizeof(float), [&](std::size_t t, std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) visits[t][i].fetch_add(1, std::memory_order_relaxed);
    extra(t, begin, end);
  });
  long long wrong = 0;
  for (auto& tensor : visits)
    for (auto& count : tensor) wrong += count.load() != 1;
  return wrong;
}

std::vector<std::int64_t> random_sizes(std::mt19937_64& rng, int team) {
  std::vector<std::int64_t> sizes;
  std::int64_t total = 0;
  const std::int64_t wanted = team * fusedoptim::kMinElementsPerThread + static_cast<std::int64_t>(rng() % 50000);
  while (total < wanted) {
    const std::int64_t pick[] = {0, 1, 17, static_cast<std::int64_t>(rng() % 40000)};
    const std::int64_t size = pick[rng() % 4];
    sizes.push_back(size);
    total += size;
  }
  return sizes;
}

}  // namespace

int main() {
  omp_set_dynamic(0);
  std::mt19937_64 rng(7);
  const auto nothing = [](std::size_t, std::int64_t, std::int64_t) {};
  // Coverage with shares at the bounds, each thread in turn the slow one.
  for (int team = 2; team <= 6; ++team) {
    g_threads = team;
    long long wrong = 0;
    for (int slow = 0; slow < team; ++slow) {
      skew(team, slow);
      for (int call = 0; call < 20; ++call) wrong += wrong_visits(random_sizes(rng, team), nothing);
    }
    std::printf("coverage-%d %lld\n", team, wrong);
  }
  // A body that calls for_each_range again (on whichever thread): both calls cover everything.
  {
    g_threads = 2;
    std::atomic<long long> inner_wrong{0};
    const long long outer_wrong = wrong_visits(random_sizes(rng, 2), [&](std::size_t, std::int64_t, std::int64_t) {
      inner_wrong += wrong_visits({40000, 17, 30000}, [](std::size_t, std::int64_t, std::int64_t) {});
    });
    std::printf("nested %lld %lld\n", outer_wrong, inner_wrong.load());
  }
  // Learning: thread 1 spins ten times as long per element as thread 0. On a new calling thread,
  // whose shares start equal; two threads, so that on two cores neither waits for a core. After
  // 60 calls thread 1's share is near its lower bound, a quarter.
  {
    g_threads = 2;
    double first = 0.0, second = 0.0;
    std::thread caller([&] {
      const auto spin = [](std::size_t, std::int64_t begin, std::int64_t end) {
        const double seconds = (omp_get_thread_num() == 1 ? 10 : 1) * 2e-9 * static_cast<double>(end - begin);
        const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
        while (std::chrono::steady_clock::now() < until) {
        }
      };
      for (int call = 0; call < 60; ++call) wrong_visits({150000}, spin);
      const std::vector<std::int64_t> cuts = fusedoptim::calling_thread_balance().cuts(2, 1000000);
      first = cuts[1] / 1e6;
      second = (cuts[2] - cuts[1]) / 1e6;
    });
    caller.join();
    std::printf("learned %.4f %.4f\n", first, second);
  }
  return 0;
}
