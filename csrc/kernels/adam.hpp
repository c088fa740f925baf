// Adam and AdamW, with amsgrad, L2 or decoupled weight decay, and maximize (torch.optim.Adam/AdamW).
//
//   g = -grad if maximize else grad
//   L2:        g += weight_decay * p
//   decoupled: p *= 1 - lr * weight_decay
//   exp_avg = lerp(exp_avg, g, 1 - beta1)
//   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
//   amsgrad:   max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq), used in place of exp_avg_sq below
//   denom = sqrt(exp_avg_sq) / sqrt(1 - beta2^step) + eps
//   p -= lr / (1 - beta1^step) * exp_avg / denom
template <class T>
struct AdamScalars {
  T sign, weight_decay, decay_factor, one_minus_beta1, beta2, one_minus_beta2, neg_step_size,
      bias_correction2_sqrt, eps;
  AdamScalars(const fusedoptim::AdamHyper& h, std::int64_t step)
      : sign(h.maximize ? T(-1) : T(1)),
        weight_decay(T(h.weight_decay)),
        decay_factor(T(1.0 - h.lr * h.weight_decay)),
        one_minus_beta1(T(1.0 - h.beta1)),
        beta2(T(h.beta2)),
        one_minus_beta2(T(1.0 - h.beta2)),
        neg_step_size(T(-(h.lr / fo_one_minus_pow(h.beta1, step)))),
        bias_correction2_sqrt(T(__builtin_sqrt(fo_one_minus_pow(h.beta2, step)))),
        eps(T(h.eps)) {}
};

// Elements [i, i + lanes) of one tensor; L is T or FoLanes<T>::type (common.hpp).
template <class L, bool kOnUnit, fusedoptim::WeightDecay kDecay, bool kAmsgrad, class T>
inline void adam_lanes(const AdamScalars<T>& c, T* FO_RESTRICT p, const T* FO_RESTRICT g,
                       T* FO_RESTRICT exp_avg, T* FO_RESTRICT exp_avg_sq,
                       T* FO_RESTRICT max_exp_avg_sq, std::int64_t i) {
  using fusedoptim::WeightDecay;
  L d = fo_load<L>(g + i) * c.sign;
  L param = fo_load<L>(p + i);
  if constexpr (kDecay == WeightDecay::L2) d = d + c.weight_decay * param;
  if constexpr (kDecay == WeightDecay::Decoupled) param = param * c.decay_factor;
  const L old = fo_load<L>(exp_avg + i);
  const L m = old + c.one_minus_beta1 * (d - old);
  fo_store(exp_avg + i, m);
  L v = fo_load<L>(exp_avg_sq + i) * c.beta2 + c.one_minus_beta2 * (d * d);
  fo_store(exp_avg_sq + i, v);
  if constexpr (kAmsgrad) {
    v = fo_nan_max(fo_load<L>(max_exp_avg_sq + i), v);
    fo_store(max_exp_avg_sq + i, v);
  }
  const L denom = fo_sqrt_on<kOnUnit>(v) / c.bias_correction2_sqrt + c.eps;
  fo_store(p + i, param + c.neg_step_size * (m / denom));
}

template <class T, fusedoptim::WeightDecay kDecay, bool kAmsgrad>
void adam_update(const fusedoptim::AdamHyper& h, std::int64_t step,
                 const fusedoptim::TensorPointers<T>& t, std::int64_t n) {
  const AdamScalars<T> c(h, step);
  T* FO_RESTRICT p = t.param;
  const T* FO_RESTRICT g = t.grad;
  T* FO_RESTRICT exp_avg = t.state0;
  T* FO_RESTRICT exp_avg_sq = t.state1;
  T* FO_RESTRICT max_exp_avg_sq = t.state2;
  fo_for_lanes<T, FO_UNIT_EVERY_ADAM>(n, t.call_share, [&](auto lane, std::int64_t i) {
    using Lane = decltype(lane);
    if constexpr (kAmsgrad)
      fo_prefetch<Lane>(i, p, g, exp_avg, exp_avg_sq, max_exp_avg_sq);
    else
      fo_prefetch<Lane>(i, p, g, exp_avg, exp_avg_sq);
    adam_lanes<typename Lane::type, Lane::on_unit, kDecay, kAmsgrad>(c, p, g, exp_avg, exp_avg_sq,
                                                                   max_exp_avg_sq, i);
  });
}
