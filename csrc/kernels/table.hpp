// Fills a KernelTable with every instantiation of the kernels for one storage type. Included by
// each per-ISA object after the kernel headers.
template <class T>
void fill_table(fusedoptim::KernelTable<T>& k) {
  using fusedoptim::WeightDecay;
  k.sgd[0][0][0] = &sgd_update<T, false, false, false>;
  k.sgd[0][0][1] = &sgd_update<T, false, false, false>;  // Nesterov without momentum: plain SGD
  k.sgd[0][1][0] = &sgd_update<T, false, true, false>;
  k.sgd[0][1][1] = &sgd_update<T, false, true, true>;
  k.sgd[1][0][0] = &sgd_update<T, true, false, false>;
  k.sgd[1][0][1] = &sgd_update<T, true, false, false>;
  k.sgd[1][1][0] = &sgd_update<T, true, true, false>;
  k.sgd[1][1][1] = &sgd_update<T, true, true, true>;
  k.adagrad[0] = &adagrad_update<T, false>;
  k.adagrad[1] = &adagrad_update<T, true>;
  k.rmsprop[0][0][0] = &rmsprop_update<T, false, false, false>;
  k.rmsprop[0][0][1] = &rmsprop_update<T, false, false, true>;
  k.rmsprop[0][1][0] = &rmsprop_update<T, false, true, false>;
  k.rmsprop[0][1][1] = &rmsprop_update<T, false, true, true>;
  k.rmsprop[1][0][0] = &rmsprop_update<T, true, false, false>;
  k.rmsprop[1][0][1] = &rmsprop_update<T, true, false, true>;
  k.rmsprop[1][1][0] = &rmsprop_update<T, true, true, false>;
  k.rmsprop[1][1][1] = &rmsprop_update<T, true, true, true>;
  k.adadelta[0] = &adadelta_update<T, false>;
  k.adadelta[1] = &adadelta_update<T, true>;
  k.adam[0][0] = &adam_update<T, WeightDecay::None, false>;
  k.adam[0][1] = &adam_update<T, WeightDecay::None, true>;
  k.adam[1][0] = &adam_update<T, WeightDecay::L2, false>;
  k.adam[1][1] = &adam_update<T, WeightDecay::L2, true>;
  k.adam[2][0] = &adam_update<T, WeightDecay::Decoupled, false>;
  k.adam[2][1] = &adam_update<T, WeightDecay::Decoupled, true>;
  k.norm[static_cast<int>(fusedoptim::NormKind::Two)] = &norm_walk<T, fusedoptim::NormKind::Two>;
  k.norm[static_cast<int>(fusedoptim::NormKind::One)] = &norm_walk<T, fusedoptim::NormKind::One>;
  k.norm[static_cast<int>(fusedoptim::NormKind::Inf)] = &norm_walk<T, fusedoptim::NormKind::Inf>;
  k.norm[static_cast<int>(fusedoptim::NormKind::General)] = &norm_sum_pow<T>;
  k.map[static_cast<int>(fusedoptim::MapKind::Scale)] = &map_scale<T>;
  k.map[static_cast<int>(fusedoptim::MapKind::Clamp)] = &map_clamp<T>;
  k.map[static_cast<int>(fusedoptim::MapKind::Sqrt)] = &map_sqrt<T>;
  k.sqrt_on_fma_units = FoLanes<T>::software_sqrt;
  k.triad = &stream_triad<T>;
  k.axpy = &stream_axpy<T>;
  k.stream_update[0] = &stream_update<T, 1>;
  k.stream_update[1] = &stream_update<T, 2>;
  k.stream_update[2] = &stream_update<T, 3>;
  k.stream_update[3] = &stream_update<T, 4>;
  k.divider[0][0] = &divider_probe<T, 0, 1>;
  k.divider[0][1] = &divider_probe<T, 0, 2>;
  k.divider[1][0] = &divider_probe<T, 1, 1>;
  k.divider[1][1] = &divider_probe<T, 1, 2>;
  k.divider[2][0] = &divider_probe<T, 2, 1>;
  k.divider[2][1] = &divider_probe<T, 2, 2>;
}
