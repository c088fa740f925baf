// RMSprop, plain or centered, with momentum, weight decay and maximize (torch.optim.RMSprop).
// eps is added outside the square root, as in torch.
//
//   g = -grad if maximize else grad;  g += weight_decay * p
//   square_avg = alpha * square_avg + (1 - alpha) * g * g
//   centered:  grad_avg = lerp(grad_avg, g, 1 - alpha);  avg = sqrt(square_avg - grad_avg^2) + eps
//   otherwise: avg = sqrt(square_avg) + eps
//   momentum > 0:  buf = momentum * buf + g / avg;  p -= lr * buf
//   otherwise:     p -= lr * g / avg
template <class T, bool kWeightDecay, bool kMomentum, bool kCentered>
void rmsprop_update(const fusedoptim::RmspropHyper& h, std::int64_t /*step*/,
                    const fusedoptim::TensorPointers<T>& t, std::int64_t n) {
  T* FO_RESTRICT p = t.param;
  const T* FO_RESTRICT g = t.grad;
  T* FO_RESTRICT square_avg = t.state0;
  T* FO_RESTRICT buf = t.state1;
  T* FO_RESTRICT grad_avg = t.state2;
  const T sign = h.maximize ? T(-1) : T(1);
  const T weight_decay = T(h.weight_decay);
  const T alpha = T(h.alpha);
  const T one_minus_alpha = T(1.0 - h.alpha);
  const T eps = T(h.eps);
  const T momentum = T(h.momentum);
  const T neg_lr = T(-h.lr);
  for (std::int64_t i = 0; i < n; ++i) {
    T d = g[i] * sign;
    if constexpr (kWeightDecay) d = d + weight_decay * p[i];
    const T sq = square_avg[i] * alpha + one_minus_alpha * (d * d);
    square_avg[i] = sq;
    T avg;
    if constexpr (kCentered) {
      const T ga = grad_avg[i] + one_minus_alpha * (d - grad_avg[i]);
      grad_avg[i] = ga;
      avg = fo_sqrt(sq - ga * ga) + eps;
    } else {
      avg = fo_sqrt(sq) + eps;
    }
    if constexpr (kMomentum) {
      const T b = buf[i] * momentum + d / avg;
      buf[i] = b;
      p[i] = p[i] + neg_lr * b;
    } else {
      p[i] = p[i] + neg_lr * (d / avg);
    }
  }
}
