// Drives fusedoptim::TeamBalance (csrc/include/fusedoptim/runtime.hpp) with made-up timings and
// prints the shares it arrives at; tests/test_threads_and_isa.py checks them. One line per
// scenario: its name, then each thread's share, then the split points of 1,000,000 elements.
#include <cstdio>
#include <vector>

#include "fusedoptim/runtime.hpp"

using fusedoptim::TeamBalance;

namespace {

// `calls` calls of `total` elements, thread i starting `delay[i]` seconds after the call and
// taking `rate[i]` seconds per element, timed as the driver times them.
void simulate(const char* name, int team, const std::vector<double>& delay,
              const std::vector<double>& rate, int calls, std::int64_t total = 1000000) {
  TeamBalance balance;
  for (int c = 0; c < calls; ++c) {
    const std::vector<std::int64_t> cuts = balance.cuts(team, total);
    std::vector<TeamBalance::Timing>& timings = balance.timings(team);
    for (int i = 0; i < team; ++i) {
      const std::int64_t elements = cuts[i + 1] - cuts[i];
      timings[i] = {delay[i], delay[i] + rate[i] * static_cast<double>(elements), elements};
    }
    balance.learn(team);
  }
  const std::vector<std::int64_t> cuts = balance.cuts(team, 1000000);
  std::printf("%s", name);
  for (int i = 0; i < team; ++i) std::printf(" %.6f", static_cast<double>(cuts[i + 1] - cuts[i]) / 1e6);
  for (std::int64_t cut : cuts) std::printf(" %lld", static_cast<long long>(cut));
  std::printf("\n");
}

}  // namespace

int main() {
  const double ns = 1e-9;
  simulate("equal", 2, {0, 0}, {ns, ns}, 200);
  simulate("no-calls", 2, {0, 0}, {ns, ns}, 0);
  simulate("one-call-second-twice-as-slow", 2, {0, 0}, {ns, 2 * ns}, 1);
  simulate("second-twice-as-slow", 2, {0, 0}, {ns, 2 * ns}, 200);
  // 1e6 elements at 1 ns each: a worker 100 us late should get (1e6 - 1e5) / 2 elements.
  simulate("second-starts-late", 2, {0, 100e3 * ns}, {ns, ns}, 200);
  simulate("second-ten-times-slower", 2, {0, 0}, {ns, 10 * ns}, 200);
  simulate("four-threads", 4, {0, 0, 0, 0}, {ns, 2 * ns, ns, 4 * ns}, 400);
  // One thread four times as fast as seven others: it would want 4/11 of the elements.
  simulate("eight-threads-one-fast", 8, std::vector<double>(8, 0.0),
           {ns, 4 * ns, 4 * ns, 4 * ns, 4 * ns, 4 * ns, 4 * ns, 4 * ns}, 400);
  // A thread that did nothing (its timing says 0 elements): the call teaches nothing.
  {
    TeamBalance balance;
    balance.cuts(2, 1000);
    balance.timings(2) = {{0, 1e-6, 1000}, {1e-7, 2e-7, 0}};
    balance.learn(2);
    const std::vector<std::int64_t> cuts = balance.cuts(2, 1000);
    std::printf("idle-thread %.6f %.6f\n", cuts[1] / 1000.0, (cuts[2] - cuts[1]) / 1000.0);
  }
  // Learned for two threads (the second twice as slow), then asked for three: equal shares for
  // the new team size; calls of three threads between do not change what two threads learned.
  {
    TeamBalance balance;
    for (int c = 0; c < 200; ++c) {
      const std::vector<std::int64_t> cuts = balance.cuts(2, 1000000);
      balance.timings(2) = {{0, 1e-9 * cuts[1], cuts[1]}, {0, 2e-9 * (cuts[2] - cuts[1]), cuts[2] - cuts[1]}};
      balance.learn(2);
    }
    const std::vector<std::int64_t> cuts = balance.cuts(3, 999999);
    std::printf("new-team-size %lld %lld %lld %lld\n", static_cast<long long>(cuts[0]),
                static_cast<long long>(cuts[1]), static_cast<long long>(cuts[2]),
                static_cast<long long>(cuts[3]));
    for (int c = 0; c < 50; ++c) {
      const std::vector<std::int64_t> three = balance.cuts(3, 999999);
      balance.timings(3) = {{0, 1e-9 * three[1], three[1]},
                            {0, 1e-9 * (three[2] - three[1]), three[2] - three[1]},
                            {0, 1e-9 * (three[3] - three[2]), three[3] - three[2]}};
      balance.learn(3);
    }
    const std::vector<std::int64_t> two = balance.cuts(2, 1000000);
    std::printf("team-sizes-kept-apart %.6f %.6f\n", two[1] / 1e6, (two[2] - two[1]) / 1e6);
  }
  return 0;
}
