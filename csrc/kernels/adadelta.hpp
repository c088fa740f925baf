// AdaDelta with weight decay and maximize (torch.optim.Adadelta).
//
//   g = -grad if maximize else grad;  g += weight_decay * p
//   square_avg = rho * square_avg + (1 - rho) * g * g
//   delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g
//   acc_delta = rho * acc_delta + (1 - rho) * delta * delta
//   p -= lr * delta
template <class T, bool kWeightDecay>
void adadelta_update(const fusedoptim::AdadeltaHyper& h, std::int64_t /*step*/,
                     const fusedoptim::TensorPointers<T>& t, std::int64_t n) {
  T* FO_RESTRICT p = t.param;
  const T* FO_RESTRICT g = t.grad;
  T* FO_RESTRICT square_avg = t.state0;
  T* FO_RESTRICT acc_delta = t.state1;
  const T sign = h.maximize ? T(-1) : T(1);
  const T weight_decay = T(h.weight_decay);
  const T rho = T(h.rho);
  const T one_minus_rho = T(1.0 - h.rho);
  const T eps = T(h.eps);
  const T neg_lr = T(-h.lr);
  for (std::int64_t i = 0; i < n; ++i) {
    T d = g[i] * sign;
    if constexpr (kWeightDecay) d = d + weight_decay * p[i];
    const T sq = square_avg[i] * rho + one_minus_rho * (d * d);
    square_avg[i] = sq;
    const T std_dev = fo_sqrt(sq + eps);
    const T delta = fo_sqrt(acc_delta[i] + eps) / std_dev * d;
    acc_delta[i] = acc_delta[i] * rho + one_minus_rho * (delta * delta);
    p[i] = p[i] + neg_lr * delta;
  }
}
