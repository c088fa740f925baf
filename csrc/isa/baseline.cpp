// The kernels compiled for the baseline instruction set of the target (x86-64: SSE2).
#include "fusedoptim/kernels.hpp"

namespace {
#include "../kernels/all.hpp"
}  // namespace

void fusedoptim::fill_tables_baseline(KernelTable<float>& f32, KernelTable<double>& f64) {
  fill_table(f32);
  fill_table(f64);
}
