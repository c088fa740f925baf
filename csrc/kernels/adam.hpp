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
template <class T, fusedoptim::WeightDecay kDecay, bool kAmsgrad>
void adam_update(const fusedoptim::AdamHyper& h, std::int64_t step,
                 const fusedoptim::TensorPointers<T>& t, std::int64_t n) {
  using fusedoptim::WeightDecay;
  T* FO_RESTRICT p = t.param;
  const T* FO_RESTRICT g = t.grad;
  T* FO_RESTRICT exp_avg = t.state0;
  T* FO_RESTRICT exp_avg_sq = t.state1;
  T* FO_RESTRICT max_exp_avg_sq = t.state2;
  const T sign = h.maximize ? T(-1) : T(1);
  const T weight_decay = T(h.weight_decay);
  const T decay_factor = T(1.0 - h.lr * h.weight_decay);
  const T one_minus_beta1 = T(1.0 - h.beta1);
  const T beta2 = T(h.beta2);
  const T one_minus_beta2 = T(1.0 - h.beta2);
  const T neg_step_size = T(-(h.lr / fo_one_minus_pow(h.beta1, step)));
  const T bias_correction2_sqrt = T(__builtin_sqrt(fo_one_minus_pow(h.beta2, step)));
  const T eps = T(h.eps);
  for (std::int64_t i = 0; i < n; ++i) {
    T d = g[i] * sign;
    T param = p[i];
    if constexpr (kDecay == WeightDecay::L2) d = d + weight_decay * param;
    if constexpr (kDecay == WeightDecay::Decoupled) param = param * decay_factor;
    const T m = exp_avg[i] + one_minus_beta1 * (d - exp_avg[i]);
    exp_avg[i] = m;
    T v = exp_avg_sq[i] * beta2 + one_minus_beta2 * (d * d);
    exp_avg_sq[i] = v;
    if constexpr (kAmsgrad) {
      v = fo_nan_max(max_exp_avg_sq[i], v);
      max_exp_avg_sq[i] = v;
    }
    const T denom = fo_sqrt(v) / bias_correction2_sqrt + eps;
    p[i] = param + neg_step_size * (m / denom);
  }
}
