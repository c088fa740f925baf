// RMSprop, plain or centered, with momentum, weight decay and maximize (torch.optim.RMSprop).
// eps is added outside the square root, as in torch.
//
//   g = -grad if maximize else grad;  g += weight_decay * p
//   square_avg = alpha * square_avg + (1 - alpha) * g * g
//   centered:  grad_avg = lerp(grad_avg, g, 1 - alpha);  avg = sqrt(square_avg - grad_avg^2) + eps
//   otherwise: avg = sqrt(square_avg) + eps
//   momentum > 0:  buf = momentum * buf + g / avg;  p -= lr * buf
//   otherwise:     p -= lr * g / avg
template <class T>
struct RmspropScalars {
  T sign, weight_decay, alpha, one_minus_alpha, eps, momentum, neg_lr;
  explicit RmspropScalars(const fusedoptim::RmspropHyper& h)
      : sign(h.maximize ? T(-1) : T(1)),
        weight_decay(T(h.weight_decay)),
        alpha(T(h.alpha)),
        one_minus_alpha(T(1.0 - h.alpha)),
        eps(T(h.eps)),
        momentum(T(h.momentum)),
        neg_lr(T(-h.lr)) {}
};

// Elements [i, i + lanes) of one tensor; L is T or FoLanes<T>::type (common.hpp).
template <class L, bool kOnUnit, bool kWeightDecay, bool kMomentum, bool kCentered, class T>
inline void rmsprop_lanes(const RmspropScalars<T>& c, T* FO_RESTRICT p, const T* FO_RESTRICT g,
                          T* FO_RESTRICT square_avg, T* FO_RESTRICT buf, T* FO_RESTRICT grad_avg,
                          std::int64_t i) {
  L d = fo_load<L>(g + i) * c.sign;
  if constexpr (kWeightDecay) d = d + c.weight_decay * fo_load<L>(p + i);
  const L sq = fo_load<L>(square_avg + i) * c.alpha + c.one_minus_alpha * (d * d);
  fo_store(square_avg + i, sq);
  L avg;
  if constexpr (kCentered) {
    const L old = fo_load<L>(grad_avg + i);
    const L ga = old + c.one_minus_alpha * (d - old);
    fo_store(grad_avg + i, ga);
    avg = fo_sqrt_on<kOnUnit>(sq - ga * ga) + c.eps;
  } else {
    avg = fo_sqrt_on<kOnUnit>(sq) + c.eps;
  }
  if constexpr (kMomentum) {
    const L b = fo_load<L>(buf + i) * c.momentum + d / avg;
    fo_store(buf + i, b);
    fo_store(p + i, fo_load<L>(p + i) + c.neg_lr * b);
  } else {
    fo_store(p + i, fo_load<L>(p + i) + c.neg_lr * (d / avg));
  }
}

template <class T, bool kWeightDecay, bool kMomentum, bool kCentered>
void rmsprop_update(const fusedoptim::RmspropHyper& h, std::int64_t /*step*/,
                    const fusedoptim::TensorPointers<T>& t, std::int64_t n) {
  const RmspropScalars<T> c(h);
  T* FO_RESTRICT p = t.param;
  const T* FO_RESTRICT g = t.grad;
  T* FO_RESTRICT square_avg = t.state0;
  T* FO_RESTRICT buf = t.state1;
  T* FO_RESTRICT grad_avg = t.state2;
  fo_for_lanes<T, kCentered ? FO_UNIT_EVERY_RMSPROP_CENTERED : FO_UNIT_EVERY_RMSPROP>(
      n, t.call_share, [&](auto lane, std::int64_t i) {
        using Lane = decltype(lane);
        if constexpr (kMomentum && kCentered)
          fo_prefetch<Lane>(i, p, g, square_avg, buf, grad_avg);
        else if constexpr (kMomentum)
          fo_prefetch<Lane>(i, p, g, square_avg, buf);
        else if constexpr (kCentered)
          fo_prefetch<Lane>(i, p, g, square_avg, grad_avg);
        else
          fo_prefetch<Lane>(i, p, g, square_avg);
        rmsprop_lanes<typename Lane::type, Lane::on_unit, kWeightDecay, kMomentum, kCentered>(
            c, p, g, square_avg, buf, grad_avg, i);
      });
}
