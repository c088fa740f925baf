// SGD with momentum, dampening, Nesterov momentum, weight decay and maximize (torch.optim.SGD).
//
//   g = -grad if maximize else grad;  g += weight_decay * p
//   buf = g                                   (first step with momentum)
//   buf = momentum * buf + (1 - dampening) * g (later steps)
//   g = g + momentum * buf if nesterov else buf
//   p -= lr * g
template <class T, bool kWeightDecay, bool kMomentum, bool kNesterov>
void sgd_update(const fusedoptim::SgdHyper& h, std::int64_t step,
                const fusedoptim::TensorPointers<T>& t, std::int64_t n) {
  T* FO_RESTRICT p = t.param;
  const T* FO_RESTRICT g = t.grad;
  T* FO_RESTRICT buf = t.state0;
  const T sign = h.maximize ? T(-1) : T(1);
  const T weight_decay = T(h.weight_decay);
  const T momentum = T(h.momentum);
  const T one_minus_dampening = T(1.0 - h.dampening);
  const T neg_lr = T(-h.lr);
  // The first momentum step is chosen outside the loop so that each loop stays branch-free.
  const bool first = kMomentum && step == 1;
  if (first) {
    for (std::int64_t i = 0; i < n; ++i) {
      T d = g[i] * sign;
      if constexpr (kWeightDecay) d = d + weight_decay * p[i];
      const T b = d;
      buf[i] = b;
      if constexpr (kNesterov) d = d + momentum * b;
      else d = b;
      p[i] = p[i] + neg_lr * d;
    }
    return;
  }
  for (std::int64_t i = 0; i < n; ++i) {
    T d = g[i] * sign;
    if constexpr (kWeightDecay) d = d + weight_decay * p[i];
    if constexpr (kMomentum) {
      const T b = buf[i] * momentum + one_minus_dampening * d;
      buf[i] = b;
      if constexpr (kNesterov) d = d + momentum * b;
      else d = b;
    }
    p[i] = p[i] + neg_lr * d;
  }
}
