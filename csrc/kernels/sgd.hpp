// SGD with momentum, dampening, Nesterov momentum, weight decay and maximize (torch.optim.SGD).
//
//   g = -grad if maximize else grad;  g += weight_decay * p
//   buf = g                                   (first step with momentum)
//   buf = momentum * buf + (1 - dampening) * g (later steps)
//   g = g + momentum * buf if nesterov else buf
//   p -= lr * g
template <class T>
struct SgdScalars {
  T sign, weight_decay, momentum, one_minus_dampening, neg_lr;
  explicit SgdScalars(const fusedoptim::SgdHyper& h)
      : sign(h.maximize ? T(-1) : T(1)),
        weight_decay(T(h.weight_decay)),
        momentum(T(h.momentum)),
        one_minus_dampening(T(1.0 - h.dampening)),
        neg_lr(T(-h.lr)) {}
};

// Elements [i, i + lanes) of one tensor; L is T or FoLanes<T>::type (common.hpp). kFirst: the
// first momentum step (buf = g).
template <class L, bool kWeightDecay, bool kMomentum, bool kNesterov, bool kFirst, class T>
inline void sgd_lanes(const SgdScalars<T>& c, T* FO_RESTRICT p, const T* FO_RESTRICT g,
                      T* FO_RESTRICT buf, std::int64_t i) {
  L d = fo_load<L>(g + i) * c.sign;
  if constexpr (kWeightDecay) d = d + c.weight_decay * fo_load<L>(p + i);
  if constexpr (kMomentum) {
    L b = d;
    if constexpr (!kFirst) b = fo_load<L>(buf + i) * c.momentum + c.one_minus_dampening * d;
    fo_store(buf + i, b);
    if constexpr (kNesterov)
      d = d + c.momentum * b;
    else
      d = b;
  }
  fo_store(p + i, fo_load<L>(p + i) + c.neg_lr * d);
}

template <class T, bool kWeightDecay, bool kMomentum, bool kNesterov, bool kFirst>
void sgd_walk(const SgdScalars<T>& c, const fusedoptim::TensorPointers<T>& t, std::int64_t n) {
  T* FO_RESTRICT p = t.param;
  const T* FO_RESTRICT g = t.grad;
  T* FO_RESTRICT buf = t.state0;
  fo_for_lanes<T, 0>(n, t.call_share, [&](auto lane, std::int64_t i) {
    using Lane = decltype(lane);
    if constexpr (kMomentum)
      fo_prefetch<Lane>(i, p, g, buf);
    else
      fo_prefetch<Lane>(i, p, g);
    sgd_lanes<typename Lane::type, kWeightDecay, kMomentum, kNesterov, kFirst>(c, p, g, buf, i);
  });
}

template <class T, bool kWeightDecay, bool kMomentum, bool kNesterov>
void sgd_update(const fusedoptim::SgdHyper& h, std::int64_t step,
                const fusedoptim::TensorPointers<T>& t, std::int64_t n) {
  const SgdScalars<T> c(h);
  // The first momentum step is chosen outside the loop so that each loop stays branch-free.
  if (kMomentum && step == 1)
    sgd_walk<T, kWeightDecay, kMomentum, kNesterov, true>(c, t, n);
  else
    sgd_walk<T, kWeightDecay, kMomentum, kNesterov, false>(c, t, n);
}
