// Every kernel body, for inclusion inside an anonymous namespace of a per-ISA object.
#include "common.hpp"
#if defined(FUSEDOPTIM_AVX512_LANES)
#include "sqrt_avx512.hpp"
#endif
#if defined(FUSEDOPTIM_AVX512_LANES) || defined(FUSEDOPTIM_AVX2_LANES)
#include "vectors_x86.hpp"
#endif
#include "lanes.hpp"
#include "sgd.hpp"
#include "adagrad.hpp"
#include "rmsprop.hpp"
#include "adadelta.hpp"
#include "adam.hpp"
#include "reduce.hpp"
#include "table.hpp"
