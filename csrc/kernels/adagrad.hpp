// AdaGrad with lr decay, weight decay and maximize (torch.optim.Adagrad).
//
//   g = -grad if maximize else grad;  g += weight_decay * p
//   clr = lr / (1 + (step - 1) * lr_decay)
//   sum += g * g
//   p -= clr * g / (sqrt(sum) + eps)
template <class T, bool kWeightDecay>
void adagrad_update(const fusedoptim::AdagradHyper& h, std::int64_t step,
                    const fusedoptim::TensorPointers<T>& t, std::int64_t n) {
  T* FO_RESTRICT p = t.param;
  const T* FO_RESTRICT g = t.grad;
  T* FO_RESTRICT sum = t.state0;
  const T sign = h.maximize ? T(-1) : T(1);
  const T weight_decay = T(h.weight_decay);
  const T neg_clr = T(-(h.lr / (1.0 + static_cast<double>(step - 1) * h.lr_decay)));
  const T eps = T(h.eps);
  for (std::int64_t i = 0; i < n; ++i) {
    T d = g[i] * sign;
    if constexpr (kWeightDecay) d = d + weight_decay * p[i];
    const T s = sum[i] + d * d;
    sum[i] = s;
    const T std_dev = fo_sqrt(s) + eps;
    p[i] = p[i] + neg_clr * (d / std_dev);
  }
}
