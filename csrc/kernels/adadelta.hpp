// AdaDelta with weight decay and maximize (torch.optim.Adadelta).
//
//   g = -grad if maximize else grad;  g += weight_decay * p
//   square_avg = rho * square_avg + (1 - rho) * g * g
//   delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g
//   acc_delta = rho * acc_delta + (1 - rho) * delta * delta
//   p -= lr * delta
template <class T>
struct AdadeltaScalars {
  T sign, weight_decay, rho, one_minus_rho, eps, neg_lr;
  explicit AdadeltaScalars(const fusedoptim::AdadeltaHyper& h)
      : sign(h.maximize ? T(-1) : T(1)),
        weight_decay(T(h.weight_decay)),
        rho(T(h.rho)),
        one_minus_rho(T(1.0 - h.rho)),
        eps(T(h.eps)),
        neg_lr(T(-h.lr)) {}
};

// Elements [i, i + lanes) of one tensor; L is T or FoLanes<T>::type (common.hpp).
template <class L, bool kOnUnit, bool kEveryOnUnit, bool kWeightDecay, class T>
inline void adadelta_lanes(const AdadeltaScalars<T>& c, T* FO_RESTRICT p, const T* FO_RESTRICT g,
                           T* FO_RESTRICT square_avg, T* FO_RESTRICT acc_delta, std::int64_t i) {
  L d = fo_load<L>(g + i) * c.sign;
  if constexpr (kWeightDecay) d = d + c.weight_decay * fo_load<L>(p + i);
  const L sq = fo_load<L>(square_avg + i) * c.rho + c.one_minus_rho * (d * d);
  fo_store(square_avg + i, sq);
  const L std_dev = fo_sqrt_on<kOnUnit>(sq + c.eps);
  const L acc = fo_load<L>(acc_delta + i);
  const L delta = fo_sqrt_on<kEveryOnUnit>(acc + c.eps) / std_dev * d;
  fo_store(acc_delta + i, acc * c.rho + c.one_minus_rho * (delta * delta));
  fo_store(p + i, fo_load<L>(p + i) + c.neg_lr * delta);
}

template <class T, bool kWeightDecay>
void adadelta_update(const fusedoptim::AdadeltaHyper& h, std::int64_t /*step*/,
                     const fusedoptim::TensorPointers<T>& t, std::int64_t n) {
  const AdadeltaScalars<T> c(h);
  T* FO_RESTRICT p = t.param;
  const T* FO_RESTRICT g = t.grad;
  T* FO_RESTRICT square_avg = t.state0;
  T* FO_RESTRICT acc_delta = t.state1;
  fo_for_lanes<T, FO_UNIT_EVERY_ADADELTA>(n, t.call_share, [&](auto lane, std::int64_t i) {
    using Lane = decltype(lane);
    fo_prefetch<Lane>(i, p, g, square_avg, acc_delta);
    adadelta_lanes<typename Lane::type, Lane::on_unit, Lane::every_root_on_unit, kWeightDecay>(
        c, p, g, square_avg, acc_delta, i);
  });
}
