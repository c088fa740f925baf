// AdaGrad with lr decay, weight decay and maximize (torch.optim.Adagrad).
//
//   g = -grad if maximize else grad;  g += weight_decay * p
//   clr = lr / (1 + (step - 1) * lr_decay)
//   sum += g * g
//   p -= clr * g / (sqrt(sum) + eps)
template <class T>
struct AdagradScalars {
  T sign, weight_decay, neg_clr, eps;
  AdagradScalars(const fusedoptim::AdagradHyper& h, std::int64_t step)
      : sign(h.maximize ? T(-1) : T(1)),
        weight_decay(T(h.weight_decay)),
        neg_clr(T(-(h.lr / (1.0 + static_cast<double>(step - 1) * h.lr_decay)))),
        eps(T(h.eps)) {}
};

// Elements [i, i + lanes) of one tensor; L is T or FoLanes<T>::type (common.hpp).
template <class L, bool kOnUnit, bool kWeightDecay, class T>
inline void adagrad_lanes(const AdagradScalars<T>& c, T* FO_RESTRICT p, const T* FO_RESTRICT g,
                          T* FO_RESTRICT sum, std::int64_t i) {
  L d = fo_load<L>(g + i) * c.sign;
  if constexpr (kWeightDecay) d = d + c.weight_decay * fo_load<L>(p + i);
  const L s = fo_load<L>(sum + i) + d * d;
  fo_store(sum + i, s);
  const L std_dev = fo_sqrt_on<kOnUnit>(s) + c.eps;
  fo_store(p + i, fo_load<L>(p + i) + c.neg_clr * (d / std_dev));
}

template <class T, bool kWeightDecay>
void adagrad_update(const fusedoptim::AdagradHyper& h, std::int64_t step,
                    const fusedoptim::TensorPointers<T>& t, std::int64_t n) {
  const AdagradScalars<T> c(h, step);
  T* FO_RESTRICT p = t.param;
  const T* FO_RESTRICT g = t.grad;
  T* FO_RESTRICT sum = t.state0;
  fo_for_lanes<T, FO_UNIT_EVERY_ADAGRAD>(n, t.call_share, [&](auto lane, std::int64_t i) {
    using Lane = decltype(lane);
    fo_prefetch<Lane>(i, p, g, sum);
    adagrad_lanes<typename Lane::type, Lane::on_unit, kWeightDecay>(c, p, g, sum, i);
  });
}
