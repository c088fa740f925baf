// The Python module fusedoptim._core: converts and checks the arguments, releases the GIL and
// hands the work to the parallel driver. No arithmetic happens here.
//
// Every array is checked before any array is written, so a bad argument raises and changes
// nothing. Arrays are never converted: a float64 gradient for a float32 parameter, a non-contiguous
// or read-only array is refused rather than silently copied (updating a copy would lose the update).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <limits>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "fusedoptim/kernels.hpp"
#include "fusedoptim/runtime.hpp"

namespace py = pybind11;
using namespace fusedoptim;

namespace {

constexpr int kMaxStates = 3;

// "list", or "numpy.float64" (a module-qualified name outside the builtins, so that a NumPy
// scalar is not mistaken for an array of that dtype in a message).
std::string type_name(py::handle h) {
  const py::handle type = py::type::handle_of(h);
  const std::string name = py::str(type.attr("__qualname__"));
  const py::object module = py::getattr(type, "__module__", py::none());
  if (!py::isinstance<py::str>(module) || module.cast<std::string>() == "builtins") return name;
  return module.cast<std::string>() + "." + name;
}

std::string shape_string(const py::array& a) {
  std::string out = "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d)
    out += (d ? ", " : "") + std::to_string(a.shape(d));
  return out + (a.ndim() == 1 ? ",)" : ")");
}

std::string dtype_string(const py::array& a) { return py::str(a.dtype()); }

bool same_shape_raw(const py::detail::PyArray_Proxy* a, const py::detail::PyArray_Proxy* b) {
  if (a->nd != b->nd) return false;
  for (int d = 0; d < a->nd; ++d)
    if (a->dimensions[d] != b->dimensions[d]) return false;
  return true;
}

bool same_shape(const py::array& a, const py::array& b) {
  if (a.ndim() != b.ndim()) return false;
  for (py::ssize_t d = 0; d < a.ndim(); ++d)
    if (a.shape(d) != b.shape(d)) return false;
  return true;
}

// A list argument turned into a tuple: the tuple holds a reference to every array, so nothing a
// Python thread does to the caller's list while the GIL is released can free an array in use.
py::tuple as_tuple(const char* op, const char* name, py::handle seq) {
  if (!py::isinstance<py::list>(seq) && !py::isinstance<py::tuple>(seq))
    throw py::type_error(std::string(op) + ": " + name + " must be a list or tuple of numpy arrays, got " +
                         type_name(seq));
  return py::reinterpret_steal<py::tuple>(PySequence_Tuple(seq.ptr()));
}

struct Span {
  const char* begin;
  const char* end;
};

class Checker {
 public:
  explicit Checker(const char* op) : op_(op) {}

  [[noreturn]] void type_error(const std::string& what) const {
    throw py::type_error(std::string(op_) + ": " + what);
  }
  [[noreturn]] void value_error(const std::string& what) const {
    throw py::value_error(std::string(op_) + ": " + what);
  }

  // The index of an argument that is one array, not an item of a list: messages name it alone.
  static constexpr std::size_t kWhole = static_cast<std::size_t>(-1);

  // "grads[3]" for item 3 of a list, "b" for a single array (i == kWhole).
  static std::string item(const char* list, std::size_t i) {
    return i == kWhole ? std::string(list) : std::string(list) + "[" + std::to_string(i) + "]";
  }

  // Checks one array and returns it. `param` is the array it must match (nullptr for a parameter
  // itself, which must match the dtype of the call instead), named `param_list` in messages. The
  // common path reads numpy's structs directly and builds no strings: it runs for every array of
  // every call.
  py::array check(const char* list, std::size_t i, py::handle h, bool writeable,
                  const py::array* param, int call_type_num, const char* param_list = "params") const {
    auto where = [&] { return item(list, i); };
    if (!py::isinstance<py::array>(h))
      type_error(where() + " must be a numpy.ndarray of float32 or float64, got " + type_name(h));
    const auto* proxy = py::detail::array_proxy(h.ptr());
    const auto* descr = py::detail::array_descriptor_proxy(proxy->descr);
    const int num = descr->type_num;
    const int flags = proxy->flags;
    constexpr int kRequired = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
    const int required = kRequired | (writeable ? py::detail::npy_api::NPY_ARRAY_WRITEABLE_ : 0);
    const bool dtype_ok = param != nullptr ? num == py::detail::array_descriptor_proxy(
                                                        py::detail::array_proxy(param->ptr())->descr)->type_num
                                           : num == call_type_num;
    const bool fast_ok = (num == py::detail::npy_api::NPY_FLOAT_ || num == py::detail::npy_api::NPY_DOUBLE_) &&
                         descr->byteorder != '>' && dtype_ok && (flags & required) == required &&
                         (param == nullptr || same_shape_raw(proxy, py::detail::array_proxy(param->ptr())));
    py::array a = py::reinterpret_borrow<py::array>(h);
    if (fast_ok) return a;
    // Slow path: find the first problem and say what it is.
    if (num != py::detail::npy_api::NPY_FLOAT_ && num != py::detail::npy_api::NPY_DOUBLE_)
      type_error(where() + " has dtype " + dtype_string(a) + "; only float32 and float64 are supported");
    if (descr->byteorder == '>')
      type_error(where() + " has non-native byte order (" + dtype_string(a) +
                 "); convert it with arr.astype(arr.dtype.newbyteorder('='))");
    if (param != nullptr) {
      if (!dtype_ok)
        type_error(where() + " has dtype " + dtype_string(a) + " but " + item(param_list, i) + " has dtype " +
                   dtype_string(*param));
      if (!same_shape(a, *param))
        value_error(where() + " has shape " + shape_string(a) + " but " + item(param_list, i) + " has shape " +
                    shape_string(*param));
    } else if (!dtype_ok) {
      type_error(where() + " has dtype " + dtype_string(a) +
                 " but earlier parameters in this call have another dtype; one call updates tensors "
                 "of one dtype (put float32 and float64 parameters in separate calls or param groups)");
    }
    if (!(flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_))
      value_error(where() + " is not C-contiguous; fusedoptim updates arrays in place and never a copy, "
                            "so make it contiguous first (numpy.ascontiguousarray) and keep that array");
    if (!(flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
      value_error(where() + " is not aligned to its element size; copy it into a fresh array first");
    value_error(where() + " is read-only; fusedoptim updates it in place, so pass a writeable array");
  }

  // Refuses arrays of one tensor that share memory: the kernels read and write them in one pass.
  void check_disjoint(std::size_t i, const std::array<const char*, 2 + kMaxStates>& names,
                      const std::array<Span, 2 + kMaxStates>& spans, int count) const {
    for (int a = 0; a < count; ++a)
      for (int b = a + 1; b < count; ++b) {
        const Span& x = spans[a];
        const Span& y = spans[b];
        if (x.begin == x.end || y.begin == y.end) continue;
        if (x.begin < y.end && y.begin < x.end)
          value_error(item(names[b], i) + " shares memory with " + item(names[a], i) +
                      "; each must be a separate array");
      }
  }

  const char* op() const { return op_; }

 private:
  const char* op_;
};

// Element count and byte range from numpy's struct (float32/float64 arrays only, checked before).
std::int64_t element_count(const py::array& a) {
  const auto* proxy = py::detail::array_proxy(a.ptr());
  std::int64_t count = 1;
  for (int d = 0; d < proxy->nd; ++d) count *= proxy->dimensions[d];
  return count;
}

Span span_of(const py::array& a) {
  const auto* proxy = py::detail::array_proxy(a.ptr());
  const int num = py::detail::array_descriptor_proxy(proxy->descr)->type_num;
  const std::int64_t element_size = num == py::detail::npy_api::NPY_FLOAT_ ? 4 : 8;
  return {proxy->data, proxy->data + element_count(a) * element_size};
}

// Refuses overlaps between arrays of different tensors of one call when either array is written:
// threads would race on the shared bytes, or one tensor's update would read another's result.
// (Within one tensor, Checker::check_disjoint gives the more specific message first.) Read-only
// arrays (gradients) may overlap each other. The byte ranges are sorted and swept once. Ranges are
// kept in one run per list (params, grads, each state); a list's arrays are usually allocated in
// order, so each run is usually sorted already, and merging the runs costs O(n), where sorting
// everything would cost more than the update of many small tensors.
class OverlapChecker {
 public:
  static constexpr int kMaxLists = 3 + kMaxStates;  // params, grads, states, steps

  void add(int list_slot, const Span& span, bool written, const char* list, std::size_t index) {
    if (span.begin != span.end) runs_[list_slot].push_back({span.begin, span.end, written, list, index});
  }

  struct Range {
    const char* begin;
    const char* end;
    bool written;
    const char* list;
    std::size_t index;
  };

  // Throws on an overlap; returns all ranges sorted by address.
  std::vector<Range> check(const Checker& check) {
    std::vector<Range> ranges;
    std::size_t total = 0;
    for (const auto& run : runs_) total += run.size();
    ranges.reserve(total);
    const auto by_begin = [](const Range& a, const Range& b) { return a.begin < b.begin; };
    for (auto& run : runs_) {
      sort_run(run);
      const auto middle = ranges.insert(ranges.end(), run.begin(), run.end());
      std::inplace_merge(ranges.begin(), middle, ranges.end(), by_begin);
    }
    const Range* reaches_furthest = nullptr;          // of all ranges so far
    const Range* written_reaches_furthest = nullptr;  // of the written ranges so far
    for (const Range& range : ranges) {
      const Range* other = nullptr;
      if (range.written && reaches_furthest != nullptr && reaches_furthest->end > range.begin)
        other = reaches_furthest;
      else if (written_reaches_furthest != nullptr && written_reaches_furthest->end > range.begin)
        other = written_reaches_furthest;
      if (other != nullptr) {
        const bool other_first = other->index < range.index;
        const Range& later = other_first ? range : *other;
        const Range& earlier = other_first ? *other : range;
        check.value_error(Checker::item(later.list, later.index) + " shares memory with " +
                          Checker::item(earlier.list, earlier.index) +
                          "; arrays that a call writes must not overlap any other array of the call");
      }
      if (reaches_furthest == nullptr || range.end > reaches_furthest->end) reaches_furthest = &range;
      if (range.written && (written_reaches_furthest == nullptr || range.end > written_reaches_furthest->end))
        written_reaches_furthest = &range;
    }
    return ranges;
  }

 private:
  // An optimizer passes the same parameter and state arrays at every step, often in an order
  // the allocator did not sort, so the order that sorts a run is remembered (a few runs, keyed
  // by their start addresses; the GIL, held during checks, guards the memo).
  struct SortMemo {
    std::vector<const char*> begins;
    std::vector<std::uint32_t> order;
  };

  static void sort_run(std::vector<Range>& run) {
    const auto by_begin = [](const Range& a, const Range& b) { return a.begin < b.begin; };
    if (std::is_sorted(run.begin(), run.end(), by_begin)) return;
    static std::array<SortMemo, 16> memos;
    static std::size_t next_memo = 0;
    for (const SortMemo& memo : memos) {
      if (memo.begins.size() != run.size()) continue;
      bool same = true;
      for (std::size_t i = 0; same && i < run.size(); ++i) same = memo.begins[i] == run[i].begin;
      if (!same) continue;
      std::vector<Range> sorted(run.size());
      for (std::size_t i = 0; i < run.size(); ++i) sorted[i] = run[memo.order[i]];
      run.swap(sorted);
      return;
    }
    SortMemo& memo = memos[next_memo++ % memos.size()];
    memo.begins.resize(run.size());
    memo.order.resize(run.size());
    for (std::size_t i = 0; i < run.size(); ++i) {
      memo.begins[i] = run[i].begin;
      memo.order[i] = static_cast<std::uint32_t>(i);
    }
    std::sort(memo.order.begin(), memo.order.end(),
              [&](std::uint32_t a, std::uint32_t b) { return run[a].begin < run[b].begin; });
    std::vector<Range> sorted(run.size());
    for (std::size_t i = 0; i < run.size(); ++i) sorted[i] = run[memo.order[i]];
    run.swap(sorted);
  }

  std::array<std::vector<Range>, kMaxLists> runs_;
};

// ---- Optimizer updates ------------------------------------------------------------------------

// What distinguishes one algorithm in the bindings: the names of its state lists, which of them
// its options use, and the kernel instantiation its options select.
struct SgdSpec {
  static constexpr const char* kName = "sgd";
  static constexpr std::array<const char*, kMaxStates> kStates{"momentum_buffers", nullptr, nullptr};
  SgdHyper hyper;
  std::array<bool, kMaxStates> uses() const { return {hyper.momentum != 0.0, false, false}; }
  template <class K>
  auto kernel(const K& k) const {
    return k.sgd[hyper.weight_decay != 0.0][hyper.momentum != 0.0][hyper.nesterov];
  }
};
struct AdagradSpec {
  static constexpr const char* kName = "adagrad";
  static constexpr std::array<const char*, kMaxStates> kStates{"state_sums", nullptr, nullptr};
  AdagradHyper hyper;
  std::array<bool, kMaxStates> uses() const { return {true, false, false}; }
  template <class K>
  auto kernel(const K& k) const {
    return k.adagrad[hyper.weight_decay != 0.0];
  }
};
struct RmspropSpec {
  static constexpr const char* kName = "rmsprop";
  static constexpr std::array<const char*, kMaxStates> kStates{"square_avgs", "momentum_buffers", "grad_avgs"};
  RmspropHyper hyper;
  std::array<bool, kMaxStates> uses() const { return {true, hyper.momentum > 0.0, hyper.centered}; }
  template <class K>
  auto kernel(const K& k) const {
    return k.rmsprop[hyper.weight_decay != 0.0][hyper.momentum > 0.0][hyper.centered];
  }
};
struct AdadeltaSpec {
  static constexpr const char* kName = "adadelta";
  static constexpr std::array<const char*, kMaxStates> kStates{"square_avgs", "acc_deltas", nullptr};
  AdadeltaHyper hyper;
  std::array<bool, kMaxStates> uses() const { return {true, true, false}; }
  template <class K>
  auto kernel(const K& k) const {
    return k.adadelta[hyper.weight_decay != 0.0];
  }
};
struct AdamSpec {
  static constexpr const char* kName = "adam";
  static constexpr std::array<const char*, kMaxStates> kStates{"exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs"};
  AdamHyper hyper;
  std::array<bool, kMaxStates> uses() const { return {true, true, hyper.amsgrad}; }
  template <class K>
  auto kernel(const K& k) const {
    const WeightDecay decay = hyper.weight_decay == 0.0      ? WeightDecay::None
                              : hyper.decoupled_weight_decay ? WeightDecay::Decoupled
                                                             : WeightDecay::L2;
    return k.adam[static_cast<int>(decay)][hyper.amsgrad];
  }
};

// The per-tensor step counts of a call: a 1-D int64 array, incremented after the update when
// asked to (then the step taken is the count + 1), else holding the 1-based step being taken.
class Steps {
 public:
  Steps(const Checker& check, py::handle steps_in, std::size_t n, bool increment)
      : check_(check), increment_(increment), array_(as_array(check, steps_in)) {
    const int flags = array_.flags();
    if (array_.dtype().kind() != 'i' || array_.itemsize() != 8 || array_.dtype().byteorder() == '>' ||
        array_.ndim() != 1 || static_cast<std::size_t>(array_.shape(0)) != n ||
        !(flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) || !(flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
      check.value_error("steps must be a contiguous 1-D int64 array with one entry per parameter (" +
                        std::to_string(n) + ")");
    if (increment && !(flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_))
      check.value_error("steps is read-only but increment_steps is True");
    data_ = static_cast<const std::int64_t*>(array_.data());
  }

  // The counts' bytes; a call that increments them writes them.
  Span span() const {
    const char* begin = reinterpret_cast<const char*>(data_);
    return {begin, begin + array_.shape(0) * static_cast<py::ssize_t>(sizeof(std::int64_t))};
  }

  // The step tensor i takes, checked.
  std::int64_t taken(std::size_t i) const {
    const auto where = [i] { return "steps[" + std::to_string(i) + "]"; };
    if (increment_ && data_[i] == std::numeric_limits<std::int64_t>::max())
      check_.value_error(where() + " cannot be incremented past the largest int64");
    const std::int64_t step = data_[i] + (increment_ ? 1 : 0);
    if (step < 1)
      check_.value_error(where() + " is " + std::to_string(data_[i]) +
                         (increment_ ? "; step counts cannot be negative"
                                     : "; the step being taken must be >= 1 (steps are 1-based)"));
    return step;
  }

  // Called once the update is done: nothing can fail any more.
  void commit(const std::vector<std::size_t>& updated) {
    if (!increment_) return;
    auto* counts = static_cast<std::int64_t*>(array_.mutable_data());
    for (std::size_t i : updated) counts[i] += 1;
  }

 private:
  // The counts as an array, taken in the initializer list: a default-constructed py::array would
  // allocate an empty numpy array at every step.
  static py::array as_array(const Checker& check, py::handle steps_in) {
    if (!py::isinstance<py::array>(steps_in))
      check.type_error("steps must be a numpy.ndarray of int64, got " + type_name(steps_in));
    return py::reinterpret_borrow<py::array>(steps_in);
  }

  const Checker& check_;
  bool increment_;
  py::array array_;
  const std::int64_t* data_ = nullptr;
};

// The tensors of a call that have a gradient, as raw pointers, ready for the kernels. The arrays
// are kept alive by whoever built the launch (argument tuples, or a Plan).
struct Launch {
  int type_num = -1;
  std::vector<std::size_t> index;  // which tensors of the call are updated
  std::vector<std::array<char*, 2 + kMaxStates>> pointers;  // param, grad, then the state slots
  std::vector<std::int64_t> step_values;
  std::vector<Extent> extents;

  void reserve(std::size_t n) {
    index.reserve(n);
    pointers.reserve(n);
    step_values.reserve(n);
    extents.reserve(n);
  }
  void add(std::size_t i, const std::array<char*, 2 + kMaxStates>& p, std::int64_t step, std::int64_t size) {
    index.push_back(i);
    pointers.push_back(p);
    step_values.push_back(step);
    extents.push_back({size, reinterpret_cast<std::uintptr_t>(p[0])});
  }
};

template <class T, class Spec>
void run_launch(const Launch& launch, const Spec& spec) {
  const UpdateFn<T, decltype(spec.hyper)> fn = spec.kernel(kernels<T>());
  std::int64_t total = 0;
  for (const Extent& e : launch.extents) total += e.size;
  const std::int64_t share = call_share(total);
  py::gil_scoped_release release;
  for_each_range(launch.extents, sizeof(T), [&](std::size_t t, std::int64_t begin, std::int64_t end) {
    const auto& p = launch.pointers[t];
    const auto at = [begin](char* base) { return base != nullptr ? reinterpret_cast<T*>(base) + begin : nullptr; };
    const TensorPointers<T> piece{at(p[0]), at(p[1]), at(p[2]), at(p[3]), at(p[4]), share};
    fn(spec.hyper, launch.step_values[t], piece, end - begin);
  });
}

template <class Spec>
void run_launch(const Launch& launch, const Spec& spec) {
  if (launch.index.empty()) return;
  if (launch.type_num == py::detail::npy_api::NPY_FLOAT_) run_launch<float>(launch, spec);
  else run_launch<double>(launch, spec);
}

// A multi-tensor update from argument lists: checks every argument, then (unless check_only)
// updates and increments the step counts.
template <class Spec>
void update(const Spec& spec, py::handle params_in, py::handle grads_in,
            const std::array<py::handle, kMaxStates>& states_in, py::handle steps_in, bool increment,
            bool check_only) {
  const Checker check(Spec::kName);
  const py::tuple params = as_tuple(Spec::kName, "params", params_in);
  const py::tuple grads = as_tuple(Spec::kName, "grads", grads_in);
  const std::size_t n = params.size();
  if (grads.size() != n)
    check.value_error("grads has " + std::to_string(grads.size()) + " entries but params has " + std::to_string(n));
  const std::array<bool, kMaxStates> uses = spec.uses();
  std::array<py::tuple, kMaxStates> states;
  for (int s = 0; s < kMaxStates; ++s) {
    if (!uses[s]) continue;
    const char* name = Spec::kStates[s];
    if (states_in[s].is_none()) check.value_error(std::string(name) + " is None but the chosen options need it");
    states[s] = as_tuple(Spec::kName, name, states_in[s]);
    if (states[s].size() != n)
      check.value_error(std::string(name) + " has " + std::to_string(states[s].size()) +
                        " entries but params has " + std::to_string(n));
  }
  Steps steps(check, steps_in, n, increment);

  Launch launch;
  launch.reserve(n);
  OverlapChecker overlaps;
  std::array<const char*, 2 + kMaxStates> names{"params", "grads"};
  int per_tensor = 2;
  std::array<int, kMaxStates> slot_of{};  // position in `names` -> state slot
  for (int s = 0; s < kMaxStates; ++s)
    if (uses[s]) {
      slot_of[per_tensor - 2] = s;
      names[per_tensor++] = Spec::kStates[s];
    }
  for (std::size_t i = 0; i < n; ++i) {
    const py::handle g = grads[i];
    if (g.is_none()) {
      // Not updated, so not checked as arrays the call writes; but what is not an array at all
      // is a mistake the caller should hear of (a state may be None: not created yet).
      if (!py::isinstance<py::array>(params[i]))
        check.type_error(Checker::item("params", i) + " must be a numpy.ndarray of float32 or float64, got " +
                         type_name(params[i]));
      for (int k = 2; k < per_tensor; ++k) {
        const py::handle state = states[slot_of[k - 2]][i];
        if (!state.is_none() && !py::isinstance<py::array>(state))
          check.type_error(Checker::item(names[k], i) + " must be a numpy.ndarray or None, got " + type_name(state));
      }
      continue;
    }
    if (launch.type_num < 0 && py::isinstance<py::array>(params[i]))
      launch.type_num = py::reinterpret_borrow<py::array>(params[i]).dtype().num();
    const py::array param = check.check("params", i, params[i], true, nullptr, launch.type_num);
    const py::array grad = check.check("grads", i, g, false, &param, launch.type_num);
    std::array<Span, 2 + kMaxStates> spans{span_of(param), span_of(grad)};
    std::array<char*, 2 + kMaxStates> pointers{const_cast<char*>(spans[0].begin), const_cast<char*>(spans[1].begin)};
    for (int k = 2; k < per_tensor; ++k) {
      const int s = slot_of[k - 2];
      const py::array state = check.check(names[k], i, states[s][i], true, &param, launch.type_num);
      spans[k] = span_of(state);
      pointers[2 + s] = const_cast<char*>(spans[k].begin);
    }
    check.check_disjoint(i, names, spans, per_tensor);
    for (int k = 0; k < per_tensor; ++k) overlaps.add(k, spans[k], k != 1, names[k], i);
    launch.add(i, pointers, steps.taken(i), element_count(param));
  }
  overlaps.add(OverlapChecker::kMaxLists - 1, steps.span(), increment, "steps", Checker::kWhole);
  overlaps.check(check);
  if (check_only) return;
  run_launch(launch, spec);
  steps.commit(launch.index);
}

// A persistent plan: the parameters and state arrays of one group, checked once, so that each
// step checks only the gradients. Gradients may be arrays or, for callers that hold other
// buffers (PyTorch tensors), integer addresses of contiguous buffers shaped like the parameter;
// the caller vouches for their size and dtype and keeps them alive during the call.
class Plan {
 public:
  Plan(const std::string& algorithm, py::handle params_in, py::handle states_in, bool gradient_addresses)
      : algorithm_(known_name(algorithm)), check_(algorithm_), gradient_addresses_(gradient_addresses) {
    if (algorithm == SgdSpec::kName) state_names_ = SgdSpec::kStates;
    else if (algorithm == AdagradSpec::kName) state_names_ = AdagradSpec::kStates;
    else if (algorithm == RmspropSpec::kName) state_names_ = RmspropSpec::kStates;
    else if (algorithm == AdadeltaSpec::kName) state_names_ = AdadeltaSpec::kStates;
    else state_names_ = AdamSpec::kStates;
    params_ = as_tuple(check_.op(), "params", params_in);
    const py::tuple state_lists = as_tuple(check_.op(), "states", states_in);
    if (state_lists.size() > static_cast<std::size_t>(kMaxStates))
      check_.value_error("states has more than " + std::to_string(kMaxStates) + " lists");
    const std::size_t n = params_.size();
    for (std::size_t s = 0; s < state_lists.size(); ++s) {
      if (state_lists[s].is_none()) continue;
      if (state_names_[s] == nullptr) check_.value_error("states[" + std::to_string(s) + "] must be None for " + algorithm_);
      const char* name = state_names_[s];
      states_[s] = as_tuple(check_.op(), name, state_lists[s]);
      has_state_[s] = true;
      if (states_[s].size() != n)
        check_.value_error(std::string(name) + " has " + std::to_string(states_[s].size()) +
                           " entries but params has " + std::to_string(n));
    }
    OverlapChecker overlaps;
    arrays_.reserve(n);
    tensors_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      if (type_num_ < 0 && py::isinstance<py::array>(params_[i]))
        type_num_ = py::reinterpret_borrow<py::array>(params_[i]).dtype().num();
      const py::array param = check_.check("params", i, params_[i], true, nullptr, type_num_);
      Tensor tensor{};
      const Span param_span = span_of(param);
      tensor.param = const_cast<char*>(param_span.begin);
      tensor.size = element_count(param);
      tensor.ndim = param.ndim() <= kCachedDims ? static_cast<int>(param.ndim()) : -1;
      for (int d = 0; d < tensor.ndim; ++d) tensor.dims[d] = param.shape(d);
      overlaps.add(0, param_span, true, "params", i);
      for (int s = 0; s < kMaxStates; ++s) {
        if (!has_state_[s] || states_[s][i].is_none()) continue;
        const py::array state = check_.check(state_names_[s], i, states_[s][i], true, &param, type_num_);
        const Span span = span_of(state);
        tensor.state[s] = const_cast<char*>(span.begin);
        overlaps.add(1 + s, span, true, state_names_[s], i);
      }
      arrays_.push_back(param);
      tensors_.push_back(tensor);
    }
    written_ = overlaps.check(check_);
    written_ends_.reserve(written_.size());
    for (const auto& range : written_) written_ends_.push_back(range.end);
  }

  std::size_t size() const { return tensors_.size(); }
  const char* algorithm() const { return algorithm_; }

  template <class Spec>
  void run(const Spec& spec, py::handle grads_in, py::handle steps_in, bool increment, bool check_only) const {
    if (std::string(algorithm_) != Spec::kName)
      check_.value_error(std::string("this plan was made for ") + algorithm_ + ", not " + Spec::kName);
    const py::tuple grads = as_tuple(check_.op(), "grads", grads_in);
    const std::size_t n = tensors_.size();
    if (grads.size() != n)
      check_.value_error("grads has " + std::to_string(grads.size()) + " entries but the plan has " + std::to_string(n) +
                         " parameters");
    Steps steps(check_, steps_in, n, increment);
    if (increment) {
      std::size_t finger = 0;
      const Span span = steps.span();
      if (span.begin != span.end) {
        const std::size_t k = first_ending_after(span.begin, finger);
        if (k < written_.size() && written_[k].begin < span.end)
          check_.value_error("steps shares memory with " + Checker::item(written_[k].list, written_[k].index) +
                             "; the counts must be an array of their own");
      }
    }
    const std::array<bool, kMaxStates> uses = spec.uses();
    const std::int64_t element_size = type_num_ == py::detail::npy_api::NPY_FLOAT_ ? 4 : 8;
    Launch launch;
    launch.type_num = type_num_;
    launch.reserve(n);
    std::size_t finger = 0;  // see check_gradient_overlap
    for (std::size_t i = 0; i < n; ++i) {
      const py::handle g = grads[i];
      if (g.is_none()) continue;
      const Tensor& tensor = tensors_[i];
      check_param_unchanged(i, tensor);
      Span grad;
      if (gradient_matches(g, tensor)) {
        grad = {py::detail::array_proxy(g.ptr())->data,
                py::detail::array_proxy(g.ptr())->data + tensor.size * element_size};
      } else if (gradient_addresses_ && PyLong_Check(g.ptr()) && !PyBool_Check(g.ptr())) {
        const auto address = g.cast<std::uintptr_t>();
        if (address == 0) check_.value_error("grads[" + std::to_string(i) + "] is a null address");
        if (address % static_cast<std::uintptr_t>(element_size) != 0)
          check_.value_error("grads[" + std::to_string(i) + "] is an address not aligned to the element size");
        grad = {reinterpret_cast<const char*>(address),
                reinterpret_cast<const char*>(address) + tensor.size * element_size};
      } else {
        grad = span_of(check_.check("grads", i, g, false, &arrays_[i], type_num_));
      }
      check_gradient_overlap(i, grad, finger);
      std::array<char*, 2 + kMaxStates> pointers{tensor.param, const_cast<char*>(grad.begin)};
      for (int s = 0; s < kMaxStates; ++s) {
        if (!uses[s]) continue;
        if (tensor.state[s] == nullptr)
          check_.value_error(std::string(Spec::kStates[s]) + "[" + std::to_string(i) +
                             "] is None but the chosen options need it for a parameter with a gradient");
        pointers[2 + s] = tensor.state[s];
      }
      launch.add(i, pointers, steps.taken(i), tensor.size);
    }
    if (check_only) return;
    run_launch(launch, spec);
    steps.commit(launch.index);
  }

  // run() with the hyperparameters as one tuple of Python floats and bools, in the order of the
  // plan's method for its algorithm (plan.sgd, plan.adam, ...; the order the optimizer classes'
  // _core_arguments make them), incrementing the step counts: fast_step's call. Anything else
  // in the tuple is a TypeError (the caller then takes the method, which converts and explains).
  void run_arguments(py::handle arguments, py::handle grads, py::handle steps) const {
    if (!PyTuple_CheckExact(arguments.ptr())) throw py::type_error("arguments must be a tuple");
    const Py_ssize_t count = PyTuple_GET_SIZE(arguments.ptr());
    const auto at = [&](Py_ssize_t i) {
      if (i >= count) throw py::type_error("too few arguments for " + std::string(algorithm_));
      return PyTuple_GET_ITEM(arguments.ptr(), i);
    };
    const auto real = [&](Py_ssize_t i) {
      PyObject* value = at(i);
      if (!PyFloat_CheckExact(value)) throw py::type_error("a hyperparameter is not a float");
      return PyFloat_AS_DOUBLE(value);
    };
    const auto flag = [&](Py_ssize_t i) {
      PyObject* value = at(i);
      if (value != Py_True && value != Py_False) throw py::type_error("an option is not a bool");
      return value == Py_True;
    };
    const auto expect = [&](Py_ssize_t n) {
      if (count != n) throw py::type_error(std::to_string(count) + " arguments for " + algorithm_);
    };
    const std::string name = algorithm_;
    if (name == SgdSpec::kName) {  // lr, momentum, dampening, nesterov, weight_decay, maximize
      expect(6);
      run(SgdSpec{{real(0), real(1), real(2), real(4), flag(3), flag(5)}}, grads, steps, true, false);
    } else if (name == AdagradSpec::kName) {  // lr, lr_decay, weight_decay, eps, maximize
      expect(5);
      run(AdagradSpec{{real(0), real(1), real(2), real(3), flag(4)}}, grads, steps, true, false);
    } else if (name == RmspropSpec::kName) {  // lr, alpha, eps, weight_decay, momentum, centered, maximize
      expect(7);
      run(RmspropSpec{{real(0), real(1), real(2), real(3), real(4), flag(5), flag(6)}}, grads, steps, true, false);
    } else if (name == AdadeltaSpec::kName) {  // lr, rho, eps, weight_decay, maximize
      expect(5);
      run(AdadeltaSpec{{real(0), real(1), real(2), real(3), flag(4)}}, grads, steps, true, false);
    } else {  // adam: lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay
      expect(8);
      run(AdamSpec{{real(0), real(1), real(2), real(3), real(4), flag(5), flag(6), flag(7)}}, grads, steps, true,
          false);
    }
  }

 private:
  static const char* known_name(const std::string& algorithm) {
    for (const char* name : {SgdSpec::kName, AdagradSpec::kName, RmspropSpec::kName, AdadeltaSpec::kName, AdamSpec::kName})
      if (algorithm == name) return name;
    throw py::value_error("Plan: unknown algorithm '" + algorithm + "' (sgd, adagrad, rmsprop, adadelta, adam)");
  }

  // The shape is kept here so that checking a gradient reads only the gradient's numpy struct,
  // not the parameter's: after a pass over memory both are cold, and a miss per tensor adds up
  // over hundreds of small tensors.
  static constexpr int kCachedDims = 8;
  struct Tensor {
    char* param;
    std::array<char*, kMaxStates> state;
    std::int64_t size;
    int ndim;  // -1 when the shape has more than kCachedDims dimensions
    std::array<py::ssize_t, kCachedDims> dims;
  };

  // The common case in one look: a native-order, aligned, C-contiguous array of the plan's dtype
  // and the parameter's shape. Anything else goes through Checker::check for its message.
  bool gradient_matches(py::handle g, const Tensor& tensor) const {
    if (tensor.ndim < 0 || !py::isinstance<py::array>(g)) return false;
    const auto* proxy = py::detail::array_proxy(g.ptr());
    const auto* descr = py::detail::array_descriptor_proxy(proxy->descr);
    constexpr int kRequired = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
    if (descr->type_num != type_num_ || descr->byteorder == '>' || (proxy->flags & kRequired) != kRequired ||
        proxy->nd != tensor.ndim)
      return false;
    for (int d = 0; d < tensor.ndim; ++d)
      if (proxy->dimensions[d] != tensor.dims[d]) return false;
    return true;
  }

  // The plan checked its parameters when it was made, but an array can be changed in place since:
  // made read-only, given another dtype or shape by assignment, or resized (which may move its
  // data). Each step looks again at the parameters it writes, in their numpy structs.
  void check_param_unchanged(std::size_t i, const Tensor& tensor) const {
    const auto* proxy = py::detail::array_proxy(arrays_[i].ptr());
    const auto* descr = py::detail::array_descriptor_proxy(proxy->descr);
    constexpr int kRequired = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_ |
                              py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    bool same = proxy->data == tensor.param && descr->type_num == type_num_ && descr->byteorder != '>' &&
                (proxy->flags & kRequired) == kRequired;
    if (same && tensor.ndim >= 0) {
      same = proxy->nd == tensor.ndim;
      for (int d = 0; same && d < tensor.ndim; ++d) same = proxy->dimensions[d] == tensor.dims[d];
    } else if (same) {
      same = element_count(arrays_[i]) == tensor.size;
    }
    if (same) return;
    const char* what = !(proxy->flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_) ? "it is read-only now"
                       : proxy->data != tensor.param ? "its data moved (resized?)"
                       : descr->type_num != type_num_ || descr->byteorder == '>' ? "its dtype changed"
                       : (proxy->flags & kRequired) != kRequired ? "it is not contiguous and aligned any more"
                                                                  : "its shape changed";
    check_.value_error("params[" + std::to_string(i) + "] was changed in place after the optimizer checked it (" +
                       what + "); the update writes nothing");
  }

  // A gradient must not overlap any array the update writes. The written ranges are sorted and
  // disjoint, so the only candidate is the first one that ends after the gradient begins. Their
  // ends are searched in a compact copy, from `finger`, where the previous gradient's search
  // ended: gradients usually lie next to their parameters, in the same order, so the search reads
  // a few neighbouring entries instead of a binary search's scattered ones (out of cache, over
  // hundreds of tensors, those scattered reads cost 1% to 3% of a step).
  void check_gradient_overlap(std::size_t i, const Span& grad, std::size_t& finger) const {
    if (grad.begin == grad.end) return;
    const std::size_t k = first_ending_after(grad.begin, finger);
    if (k < written_.size() && written_[k].begin < grad.end)
      check_.value_error("grads[" + std::to_string(i) + "] shares memory with " + written_[k].list + "[" +
                         std::to_string(written_[k].index) + "]; a gradient must not overlap any array the update writes");
  }

  // The index of the first written range that ends after p (written_.size() if none): a galloping
  // search from `finger` over the sorted ends, which leaves `finger` at the answer.
  std::size_t first_ending_after(const char* p, std::size_t& finger) const {
    const std::size_t n = written_ends_.size();
    const std::size_t at = std::min(finger, n);
    std::size_t lo = 0, hi = n;  // the answer lies in [lo, hi]
    if (at < n && !(p < written_ends_[at])) {  // it lies right of `at`
      lo = at + 1;
      for (std::size_t step = 1;; step *= 2) {
        if (at + step >= n) break;
        if (p < written_ends_[at + step]) {
          hi = at + step;
          break;
        }
        lo = at + step + 1;
      }
    } else {  // at `at` or left of it
      hi = at;
      for (std::size_t step = 1;; step *= 2) {
        if (step > at) break;
        if (!(p < written_ends_[at - step])) {
          lo = at - step + 1;
          break;
        }
        hi = at - step;
      }
    }
    finger = static_cast<std::size_t>(std::upper_bound(written_ends_.begin() + lo, written_ends_.begin() + hi, p) -
                                      written_ends_.begin());
    return finger;
  }

  const char* algorithm_;
  Checker check_;
  std::array<const char*, kMaxStates> state_names_{};
  py::tuple params_;
  std::array<py::tuple, kMaxStates> states_;
  std::array<bool, kMaxStates> has_state_{};
  std::vector<py::array> arrays_;
  std::vector<Tensor> tensors_;
  std::vector<OverlapChecker::Range> written_;
  std::vector<const char*> written_ends_;  // written_[k].end, for check_gradient_overlap
  int type_num_ = -1;
  bool gradient_addresses_ = false;  // integers are addresses (fusedoptim.torch), else refused
};

// The bytes an array occupies, from its first to its last element (whatever its strides); empty
// for an array without elements and for anything that is not an array.
Span extent_of(py::handle h) {
  if (!py::isinstance<py::array>(h)) return {nullptr, nullptr};
  const auto* proxy = py::detail::array_proxy(h.ptr());
  const int num = py::detail::array_descriptor_proxy(proxy->descr)->type_num;
  if ((proxy->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) &&
      (num == py::detail::npy_api::NPY_FLOAT_ || num == py::detail::npy_api::NPY_DOUBLE_)) {
    // The usual gradient, read from numpy's struct alone.
    std::int64_t count = 1;
    for (int d = 0; d < proxy->nd; ++d) count *= proxy->dimensions[d];
    if (count == 0) return {nullptr, nullptr};
    return {proxy->data, proxy->data + count * (num == py::detail::npy_api::NPY_FLOAT_ ? 4 : 8)};
  }
  const auto a = py::reinterpret_borrow<py::array>(h);
  const char* low = static_cast<const char*>(a.data());
  const char* high = low + a.itemsize();
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    if (a.shape(d) == 0) return {nullptr, nullptr};
    const py::ssize_t reach = (a.shape(d) - 1) * a.strides(d);
    if (reach > 0) high += reach;
    else low += reach;
  }
  return {low, high};
}

// The memory that several core calls of one step write (every parameter and state array of every
// call), for the checks that span calls: a Plan checks only its own arrays, so an optimizer with
// several param groups or dtypes asks this before its first call writes anything. Indices refer
// to the lists given; the caller turns them into its own labels.
class Footprint {
 public:
  explicit Footprint(py::handle written_in) {
    const py::tuple written = as_tuple("Footprint", "written", written_in);
    for (std::size_t i = 0; i < written.size(); ++i) {
      if (written[i].is_none()) continue;
      if (!py::isinstance<py::array>(written[i]))
        throw py::type_error("Footprint: written[" + std::to_string(i) + "] must be a numpy.ndarray, got " +
                             type_name(written[i]));
      const Span span = extent_of(written[i]);
      if (span.begin != span.end) ranges_.push_back({span.begin, span.end, i});
    }
    std::sort(ranges_.begin(), ranges_.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
    const Range* reaches_furthest = nullptr;
    for (const Range& range : ranges_) {
      if (reaches_furthest != nullptr && reaches_furthest->end > range.begin) {
        overlap_ = {std::min(range.index, reaches_furthest->index), std::max(range.index, reaches_furthest->index)};
        has_overlap_ = true;
        break;
      }
      if (reaches_furthest == nullptr || range.end > reaches_furthest->end) reaches_furthest = &range;
    }
    ends_.reserve(ranges_.size());
    for (const Range& range : ranges_) ends_.push_back(range.end);
  }

  // (i, j), i < j, for two written arrays that share memory (the first such pair by address), or None.
  py::object overlap() const {
    if (!has_overlap_) return py::none();
    return py::make_tuple(overlap_.first, overlap_.second);
  }

  // (r, w) for the first array reads[r] that shares memory with written[w], or None. Entries that
  // are not arrays are skipped (the calls' own checks refuse them).
  py::object first_read_overlap(py::handle reads_in) const {
    const py::tuple reads = as_tuple("Footprint", "reads", reads_in);
    for (std::size_t r = 0; r < reads.size(); ++r) {
      const Span span = extent_of(reads[r]);
      if (span.begin == span.end) continue;
      if (has_overlap_) {  // the ends are not sorted: look at every range
        for (const Range& range : ranges_)
          if (range.begin < span.end && span.begin < range.end) return py::make_tuple(r, range.index);
        continue;
      }
      const auto k = static_cast<std::size_t>(std::upper_bound(ends_.begin(), ends_.end(), span.begin) - ends_.begin());
      if (k < ranges_.size() && ranges_[k].begin < span.end) return py::make_tuple(r, ranges_[k].index);
    }
    return py::none();
  }

  std::size_t size() const { return ranges_.size(); }

 private:
  struct Range {
    const char* begin;
    const char* end;
    std::size_t index;
  };
  std::vector<Range> ranges_;
  std::vector<const char*> ends_;
  std::pair<std::size_t, std::size_t> overlap_{};
  bool has_overlap_ = false;
};

// ---- Reductions and maps over lists of arrays (gradient clipping, bandwidth probe) -------------

struct ArrayListPlan {
  std::vector<py::array> arrays;
};

ArrayListPlan plan_arrays(const char* op, const char* name, py::handle seq, bool writeable) {
  const Checker check(op);
  py::tuple items = as_tuple(op, name, seq);
  ArrayListPlan plan;
  OverlapChecker overlaps;
  for (std::size_t i = 0; i < items.size(); ++i) {
    py::handle h = items[i];
    if (h.is_none()) continue;
    int type_num = py::isinstance<py::array>(h) ? py::reinterpret_borrow<py::array>(h).dtype().num() : -1;
    plan.arrays.push_back(check.check(name, i, h, writeable, nullptr, type_num));
    overlaps.add(0, span_of(plan.arrays.back()), writeable, name, i);
  }
  overlaps.check(check);
  return plan;
}

template <class T>
T* data_of(const py::array& a) {
  return static_cast<T*>(const_cast<void*>(a.data()));
}

double grad_norm(py::handle grads, double norm_type) {
  if (!(norm_type > 0))
    throw py::value_error("grad_norm: norm_type must be > 0 or inf, got " + std::to_string(norm_type));
  const ArrayListPlan plan = plan_arrays("grad_norm", "grads", grads, false);
  const NormKind kind = std::isinf(norm_type) ? NormKind::Inf
                        : norm_type == 2.0    ? NormKind::Two
                        : norm_type == 1.0    ? NormKind::One
                                              : NormKind::General;
  struct Block {
    std::size_t array;
    std::int64_t begin, size;
  };
  std::vector<Block> blocks;
  std::int64_t total = 0;
  for (std::size_t a = 0; a < plan.arrays.size(); ++a) {
    const std::int64_t size = plan.arrays[a].size();
    total += size;
    for (std::int64_t begin = 0; begin < size; begin += kReduceBlock)
      blocks.push_back({a, begin, std::min(kReduceBlock, size - begin)});
  }
  std::vector<double> partial(blocks.size());
  std::vector<int> is_float(plan.arrays.size());
  for (std::size_t a = 0; a < plan.arrays.size(); ++a)
    is_float[a] = plan.arrays[a].dtype().num() == py::detail::npy_api::NPY_FLOAT_;
  const int k = static_cast<int>(kind);
  {
    py::gil_scoped_release release;
    const int threads = threads_for(total);
    const std::int64_t share = call_share(total);  // long calls prefetch (kernels/reduce.hpp)
    auto reduce_block = [&](std::size_t b) {
      const Block& block = blocks[b];
      const py::array& a = plan.arrays[block.array];
      const std::int64_t readable = a.size() - block.begin;
      partial[b] = is_float[block.array]
                       ? kernels<float>().norm[k](data_of<float>(a) + block.begin, block.size, norm_type,
                                                  share, readable)
                       : kernels<double>().norm[k](data_of<double>(a) + block.begin, block.size,
                                                   norm_type, share, readable);
    };
#if defined(_OPENMP)
    if (threads > 1) {
      const std::int64_t count = static_cast<std::int64_t>(blocks.size());
      const CallerFloatingPointMode mode;
#pragma omp parallel num_threads(threads)
      {
        const WorkerFloatingPointMode worker(mode);
#pragma omp for schedule(static)
        for (std::int64_t b = 0; b < count; ++b) reduce_block(static_cast<std::size_t>(b));
      }
    } else
#endif
    {
      (void)threads;
      for (std::size_t b = 0; b < blocks.size(); ++b) reduce_block(b);
    }
  }
  double result = 0.0;
  if (kind == NormKind::Inf) {
    for (double v : partial) result = (v > result || v != v) ? v : result;
    return result;
  }
  for (double v : partial) result += v;
  if (kind == NormKind::Two) return std::sqrt(result);
  if (kind == NormKind::One) return result;
  return std::pow(result, 1.0 / norm_type);
}

void map_arrays(const char* op, py::handle arrays, MapKind kind, double a, double b) {
  const ArrayListPlan plan = plan_arrays(op, "arrays", arrays, true);
  std::vector<Extent> f32, f64;
  std::vector<const py::array*> f32_arrays, f64_arrays;
  for (const py::array& arr : plan.arrays) {
    const Extent e{arr.size(), reinterpret_cast<std::uintptr_t>(arr.data())};
    if (arr.dtype().num() == py::detail::npy_api::NPY_FLOAT_) {
      f32.push_back(e);
      f32_arrays.push_back(&arr);
    } else {
      f64.push_back(e);
      f64_arrays.push_back(&arr);
    }
  }
  const int k = static_cast<int>(kind);
  py::gil_scoped_release release;
  for_each_range(f32, sizeof(float), [&](std::size_t t, std::int64_t begin, std::int64_t end) {
    kernels<float>().map[k](data_of<float>(*f32_arrays[t]) + begin, end - begin, a, b);
  });
  for_each_range(f64, sizeof(double), [&](std::size_t t, std::int64_t begin, std::int64_t end) {
    kernels<double>().map[k](data_of<double>(*f64_arrays[t]) + begin, end - begin, a, b);
  });
}

// STREAM-style bandwidth probes, parallel like the optimizer kernels.
template <class T>
void run_stream(TriadFn<T> fn, const py::array& a, const py::array& b, const py::array* c, double s) {
  const std::vector<Extent> extents{{a.size(), reinterpret_cast<std::uintptr_t>(a.data())}};
  T* pa = data_of<T>(a);
  const T* pb = data_of<T>(b);
  const T* pc = c != nullptr ? data_of<T>(*c) : nullptr;
  py::gil_scoped_release release;
  for_each_range(extents, sizeof(T), [&](std::size_t, std::int64_t begin, std::int64_t end) {
    fn(pa + begin, pb + begin, pc != nullptr ? pc + begin : nullptr, s, end - begin);
  });
}

void stream(const char* op, py::handle a_in, py::handle b_in, py::handle c_in, double s) {
  const Checker check(op);
  const int type_num = py::isinstance<py::array>(a_in) ? py::reinterpret_borrow<py::array>(a_in).dtype().num() : -1;
  constexpr std::size_t kWhole = Checker::kWhole;
  const py::array a = check.check("a", kWhole, a_in, true, nullptr, type_num);
  const py::array b = check.check("b", kWhole, b_in, false, &a, type_num, "a");
  py::array c;
  if (!c_in.is_none()) c = check.check("c", kWhole, c_in, false, &a, type_num, "a");
  const Span empty{nullptr, nullptr};
  check.check_disjoint(kWhole, {"a", "b", "c", nullptr, nullptr},
                       {span_of(a), span_of(b), c_in.is_none() ? empty : span_of(c), empty, empty}, 3);
  const bool triad = c_in.is_none() == false;
  if (type_num == py::detail::npy_api::NPY_FLOAT_)
    run_stream<float>(triad ? kernels<float>().triad : kernels<float>().axpy, a, b, triad ? &c : nullptr, s);
  else
    run_stream<double>(triad ? kernels<double>().triad : kernels<double>().axpy, a, b, triad ? &c : nullptr, s);
}

// The traffic of an update with `written` - 1 states (reads written + 1 arrays, writes written).
template <class T>
void run_stream_update(StreamUpdateFn<T> fn, const std::array<py::array, 4>& written, std::size_t count,
                       const py::array& read, double s) {
  const std::vector<Extent> extents{{read.size(), reinterpret_cast<std::uintptr_t>(read.data())}};
  std::array<T*, 4> base{};
  for (std::size_t k = 0; k < count; ++k) base[k] = data_of<T>(written[k]);
  const T* pr = data_of<T>(read);
  py::gil_scoped_release release;
  for_each_range(extents, sizeof(T), [&](std::size_t, std::int64_t begin, std::int64_t end) {
    std::array<T*, 4> moved{};
    for (std::size_t k = 0; k < count; ++k) moved[k] = base[k] + begin;
    fn(moved.data(), pr + begin, s, end - begin);
  });
}

void stream_update(py::handle written_in, py::handle read_in, double s) {
  const Checker check("stream_update");
  if (!py::isinstance<py::list>(written_in) && !py::isinstance<py::tuple>(written_in))
    check.type_error("written must be a list or tuple of 1 to 4 arrays, got " + type_name(written_in));
  const auto written_seq = py::reinterpret_borrow<py::sequence>(written_in);
  const std::size_t count = py::len(written_seq);
  if (count < 1 || count > 4)
    check.value_error("written must hold 1 to 4 arrays, got " + std::to_string(count));
  static constexpr const char* kNames[5] = {"written[0]", "written[1]", "written[2]", "written[3]", "read"};
  const py::handle first = written_seq[0];
  const int type_num = py::isinstance<py::array>(first) ? py::reinterpret_borrow<py::array>(first).dtype().num() : -1;
  constexpr std::size_t kWhole = Checker::kWhole;
  std::array<py::array, 4> written;
  written[0] = check.check(kNames[0], kWhole, first, true, nullptr, type_num);
  for (std::size_t k = 1; k < count; ++k)
    written[k] = check.check(kNames[k], kWhole, written_seq[k], true, &written[0], type_num, kNames[0]);
  const py::array read = check.check(kNames[4], kWhole, read_in, false, &written[0], type_num, kNames[0]);
  const Span empty{nullptr, nullptr};
  std::array<const char*, 2 + kMaxStates> names{};
  std::array<Span, 2 + kMaxStates> spans{};
  for (std::size_t k = 0; k < 5; ++k) {
    names[k] = kNames[k];
    spans[k] = k < count ? span_of(written[k]) : (k == 4 ? span_of(read) : empty);
  }
  check.check_disjoint(kWhole, names, spans, 5);
  if (type_num == py::detail::npy_api::NPY_FLOAT_)
    run_stream_update<float>(kernels<float>().stream_update[count - 1], written, count, read, s);
  else
    run_stream_update<double>(kernels<double>().stream_update[count - 1], written, count, read, s);
}

// The square-root and division units' issue rate: each thread runs the probe kernel `repeats` times
// over its range of a (which should fit its core's cache), in one parallel region.
template <class T>
void run_divider(DividerFn<T> fn, const py::array& a, const py::array& b, std::int64_t repeats, double divisor) {
  const std::vector<Extent> extents{{a.size(), reinterpret_cast<std::uintptr_t>(a.data())}};
  T* pa = data_of<T>(a);
  const T* pb = data_of<T>(b);
  py::gil_scoped_release release;
  for_each_range(extents, sizeof(T), [&](std::size_t, std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = 0; r < repeats; ++r) fn(pa + begin, pb + begin, divisor, end - begin);
  });
}

void divider(py::handle a_in, py::handle b_in, int sqrts, int divisions, std::int64_t repeats, double divisor) {
  const Checker check("divider_probe");
  if (sqrts < 0 || sqrts > 2 || divisions < 1 || divisions > 2)
    check.value_error("square_roots must be 0, 1 or 2 and divisions 1 or 2, got " + std::to_string(sqrts) +
                      " and " + std::to_string(divisions));
  if (repeats < 1) check.value_error("repeats must be at least 1, got " + std::to_string(repeats));
  const int type_num = py::isinstance<py::array>(a_in) ? py::reinterpret_borrow<py::array>(a_in).dtype().num() : -1;
  constexpr std::size_t kWhole = Checker::kWhole;
  const py::array a = check.check("a", kWhole, a_in, true, nullptr, type_num);
  const py::array b = check.check("b", kWhole, b_in, false, &a, type_num, "a");
  const Span empty{nullptr, nullptr};
  check.check_disjoint(kWhole, {"a", "b", nullptr, nullptr, nullptr}, {span_of(a), span_of(b), empty, empty, empty},
                       2);
  if (type_num == py::detail::npy_api::NPY_FLOAT_)
    run_divider<float>(kernels<float>().divider[sqrts][divisions - 1], a, b, repeats, divisor);
  else
    run_divider<double>(kernels<double>().divider[sqrts][divisions - 1], a, b, repeats, divisor);
}

// Whether two lists (or tuples) hold the same objects in the same order. Only the pointers are
// compared: no object is touched (not even its reference count), so after a pass over memory that
// evicted hundreds of parameter objects this costs a scan of two pointer arrays, not a miss each.
bool same_items(py::handle a, py::handle b) {
  const auto is_sequence = [](py::handle h) { return PyList_Check(h.ptr()) || PyTuple_Check(h.ptr()); };
  if (!is_sequence(a) || !is_sequence(b))
    throw py::type_error("same_items: a and b must be lists or tuples, got " + type_name(a) + " and " + type_name(b));
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(a.ptr());
  if (n != PySequence_Fast_GET_SIZE(b.ptr())) return false;
  PyObject** x = PySequence_Fast_ITEMS(a.ptr());
  PyObject** y = PySequence_Fast_ITEMS(b.ptr());
  return std::equal(x, x + n, y);
}

// Whether every key of `keys` (a dict: the optimizer's defaults) maps in `group` (a dict) to a
// value equal to the same position of `checked` and of the type at that position of `types`:
// the hyperparameters last checked, unchanged. False on anything else (a missing key, a value
// that does not compare), which leaves the decision to the caller's full check. The optimizer
// classes ask this at every step; in Python it costs about a microsecond.
bool same_values(py::handle group, py::handle keys, py::handle checked, py::handle types) {
  if (!PyDict_CheckExact(group.ptr()) || !PyDict_CheckExact(keys.ptr()) || !PyTuple_CheckExact(checked.ptr()) ||
      !PyTuple_CheckExact(types.ptr()))
    return false;
  const Py_ssize_t n = PyDict_Size(keys.ptr());
  if (PyTuple_GET_SIZE(checked.ptr()) != n || PyTuple_GET_SIZE(types.ptr()) != n) return false;
  Py_ssize_t position = 0, i = 0;
  PyObject* key = nullptr;
  PyObject* unused = nullptr;
  // Only an ordinary exception means "not the same": KeyboardInterrupt and the like propagate.
  const auto failed = [] {
    if (PyErr_Occurred() != nullptr && !PyErr_ExceptionMatches(PyExc_Exception)) throw py::error_already_set();
    PyErr_Clear();
    return false;
  };
  while (PyDict_Next(keys.ptr(), &position, &key, &unused)) {
    if (i >= n) return false;  // a comparison added keys: the snapshot is not of this dict
    PyObject* value = PyDict_GetItemWithError(group.ptr(), key);  // borrowed
    if (value == nullptr) return failed();
    if (reinterpret_cast<PyObject*>(Py_TYPE(value)) != PyTuple_GET_ITEM(types.ptr(), i)) return false;
    PyObject* before = PyTuple_GET_ITEM(checked.ptr(), i);
    if (value != before) {
      const int equal = PyObject_RichCompareBool(value, before, Py_EQ);
      if (equal < 0) return failed();
      if (equal == 0) return false;
    }
    ++i;
  }
  return i == n;
}

// The optimizer classes' short step path (Optimizer._fast_step, src/fusedoptim/optim/base.py):
// when the optimizer has one param group of plain arrays with all its state (its `_fast` plans,
// still its current `_plans`, not `_dirty`), whose groups, parameter list and hyperparameters are
// unchanged since they were checked (`param_groups` holding the same dicts as `_plan_groups`,
// `group["params"]` the same objects as the plan's snapshot, the values equal to those checked,
// or, if not, `_refresh_hyperparameters(plan)` checking the new ones and remaking `plan.args`),
// and `grads` is a list or tuple of `_num_params` entries: the group's core plan steps with
// `plan.args`, and the answer is True. Anything else answers False with nothing written, as does
// a TypeError, ValueError or KeyError on the way (a bad gradient included: the plan checks all
// of them before it writes), and the caller takes the full path, which explains. The same
// checks as the Python they replace, in one call instead of three into the core plus Python's
// attribute lookups: a 16-element Adam step took 1.33 us instead of 1.95.
bool fast_step(py::handle optimizer, py::handle grads) {
  struct Names {
    PyObject *fast, *plans, *dirty, *param_groups, *plan_groups, *num_params, *defaults, *refresh;
    PyObject *group, *params, *checked, *checked_types, *args, *buckets, *core_plan, *steps;
  };
  const auto intern = [](const char* text) {  // kept for the life of the process
    PyObject* name = PyUnicode_InternFromString(text);
    if (name == nullptr) throw py::error_already_set();
    return name;
  };
  static const Names names{intern("_fast"),         intern("_plans"),       intern("_dirty"),
                           intern("param_groups"),  intern("_plan_groups"), intern("_num_params"),
                           intern("defaults"),      intern("_refresh_hyperparameters"),
                           intern("group"),         intern("params"),       intern("checked"),
                           intern("checked_types"), intern("args"),
                           intern("buckets"),       intern("core_plan"),    intern("steps")};
  const auto get = [](py::handle object, PyObject* name) {
    PyObject* value = PyObject_GetAttr(object.ptr(), name);
    if (value == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(value);
  };
  const auto truth = [](py::handle value) {
    const int result = PyObject_IsTrue(value.ptr());
    if (result < 0) throw py::error_already_set();
    return result == 1;
  };
  try {
    const py::object plans = get(optimizer, names.fast);
    if (!PyList_CheckExact(plans.ptr()) || PyList_GET_SIZE(plans.ptr()) != 1) return false;
    if (get(optimizer, names.plans).ptr() != plans.ptr() || truth(get(optimizer, names.dirty))) return false;
    // Owned: the hyperparameters' comparisons and _refresh_hyperparameters run Python, which
    // could empty the list (the same for the bucket below).
    const py::object plan = py::reinterpret_borrow<py::object>(PyList_GET_ITEM(plans.ptr(), 0));
    if (!same_items(get(optimizer, names.param_groups), get(optimizer, names.plan_groups))) return false;
    const py::object group = get(plan, names.group);
    PyObject* params = PyObject_GetItem(group.ptr(), names.params);  // group["params"]
    if (params == nullptr) throw py::error_already_set();
    if (!same_items(py::reinterpret_steal<py::object>(params), get(plan, names.params))) return false;
    if (!PyList_CheckExact(grads.ptr()) && !PyTuple_CheckExact(grads.ptr())) return false;
    const Py_ssize_t count = PyLong_AsSsize_t(get(optimizer, names.num_params).ptr());
    if (count == -1 && PyErr_Occurred() != nullptr) throw py::error_already_set();
    if (Py_SIZE(grads.ptr()) != count) return false;
    if (!same_values(group, get(optimizer, names.defaults), get(plan, names.checked),
                     get(plan, names.checked_types)) &&
        !truth(get(optimizer, names.refresh)(plan)))
      return false;
    const py::object buckets = get(plan, names.buckets);
    if (!PyList_CheckExact(buckets.ptr()) || PyList_GET_SIZE(buckets.ptr()) != 1) return false;
    const py::object bucket = py::reinterpret_borrow<py::object>(PyList_GET_ITEM(buckets.ptr(), 0));
    const py::object core = get(bucket, names.core_plan);
    core.cast<const Plan&>().run_arguments(get(plan, names.args), grads, get(bucket, names.steps));
    return true;
  } catch (py::error_already_set& error) {
    if (error.matches(PyExc_TypeError) || error.matches(PyExc_ValueError) || error.matches(PyExc_KeyError))
      return false;
    throw;
  } catch (const py::type_error&) {
    return false;
  } catch (const py::value_error&) {
    return false;
  } catch (const py::key_error&) {
    return false;
  } catch (const py::cast_error&) {
    return false;
  }
}

py::dict build_info() {
  py::dict info;
  const Dispatch& d = dispatch();
  info["isa"] = d.isa;
  info["isa_supported"] = d.supported;
  info["isa_compiled"] = d.compiled;
  py::list software_sqrt;
  if (kernels<float>().sqrt_on_fma_units) software_sqrt.append("float32");
  if (kernels<double>().sqrt_on_fma_units) software_sqrt.append("float64");
  info["sqrt_on_fma_units"] = software_sqrt;
#if defined(_OPENMP)
  info["openmp"] = true;
  info["openmp_version"] = static_cast<int>(_OPENMP);
  info["max_threads"] = omp_get_num_procs();
#else
  info["openmp"] = false;
  info["openmp_version"] = py::none();
  info["max_threads"] = 1;
#endif
  info["num_threads"] = get_num_threads();
#if defined(__clang__)
  info["compiler"] = std::string("Clang ") + __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = std::string("GCC ") + __VERSION__;
#elif defined(_MSC_VER)
  info["compiler"] = std::string("MSVC ") + std::to_string(_MSC_VER);
#else
  info["compiler"] = "unknown";
#endif
#if defined(FUSEDOPTIM_BUILD_FLAGS)
  info["flags"] = FUSEDOPTIM_BUILD_FLAGS;
#else
  info["flags"] = "";
#endif
  return info;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fusedoptim's compiled kernels. Use fusedoptim.functional or the optimizer classes.";
  init_dispatch();

  // The update functions, in place, over lists of arrays; see fusedoptim.functional for the rules.
  // Each is bound twice: as a module function taking the parameter and state lists, and as a
  // method of Plan, whose parameters and state were checked when it was made.
  py::class_<Plan>(m, "Plan",
                   "The parameters and state arrays of one param group, checked once; each step then checks "
                   "only the gradients: arrays, or, with gradient_addresses=True, integer addresses of "
                   "contiguous buffers shaped like the parameters, which the caller vouches for and keeps "
                   "alive (any other integer is refused like any other non-array).")
      .def(py::init<const std::string&, py::handle, py::handle, bool>(), py::arg("algorithm"),
           py::arg("params"), py::arg("states"), py::kw_only(), py::arg("gradient_addresses") = false)
      .def("__len__", &Plan::size)
      .def_property_readonly("algorithm", &Plan::algorithm);
  auto plan = py::reinterpret_borrow<py::class_<Plan>>(m.attr("Plan"));

  py::class_<Footprint>(m, "Footprint",
                        "The memory that the arrays `written` occupy (None entries skipped), for overlap checks "
                        "that span several Plans.")
      .def(py::init<py::handle>(), py::arg("written"))
      .def("overlap", &Footprint::overlap,
           "(i, j), i < j, for two written arrays that share memory, or None.")
      .def("first_read_overlap", &Footprint::first_read_overlap, py::arg("reads"),
           "(r, w) for the first reads[r] that shares memory with written[w], or None; entries that are not "
           "arrays are skipped.")
      .def("__len__", &Footprint::size);

  m.def(
      "sgd",
      [](py::handle params, py::handle grads, py::handle momentum_buffers, py::handle steps, bool increment,
         double lr, double momentum, double dampening, bool nesterov, double weight_decay, bool maximize,
         bool check_only) {
        update(SgdSpec{{lr, momentum, dampening, weight_decay, nesterov, maximize}}, params, grads,
               {momentum_buffers, py::none(), py::none()}, steps, increment, check_only);
      },
      py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("steps"),
      py::arg("increment_steps"), py::arg("lr"), py::arg("momentum"), py::arg("dampening"),
      py::arg("nesterov"), py::arg("weight_decay"), py::arg("maximize"), py::arg("check_only") = false);
  plan.def(
      "sgd",
      [](const Plan& self, py::handle grads, py::handle steps, bool increment, double lr, double momentum,
         double dampening, bool nesterov, double weight_decay, bool maximize, bool check_only) {
        self.run(SgdSpec{{lr, momentum, dampening, weight_decay, nesterov, maximize}}, grads, steps, increment,
                 check_only);
      },
      py::arg("grads"), py::arg("steps"), py::arg("increment_steps"), py::arg("lr"), py::arg("momentum"),
      py::arg("dampening"), py::arg("nesterov"), py::arg("weight_decay"), py::arg("maximize"),
      py::arg("check_only") = false);

  m.def(
      "adagrad",
      [](py::handle params, py::handle grads, py::handle state_sums, py::handle steps, bool increment, double lr,
         double lr_decay, double weight_decay, double eps, bool maximize, bool check_only) {
        update(AdagradSpec{{lr, lr_decay, weight_decay, eps, maximize}}, params, grads,
               {state_sums, py::none(), py::none()}, steps, increment, check_only);
      },
      py::arg("params"), py::arg("grads"), py::arg("state_sums"), py::arg("steps"), py::arg("increment_steps"),
      py::arg("lr"), py::arg("lr_decay"), py::arg("weight_decay"), py::arg("eps"), py::arg("maximize"),
      py::arg("check_only") = false);
  plan.def(
      "adagrad",
      [](const Plan& self, py::handle grads, py::handle steps, bool increment, double lr, double lr_decay,
         double weight_decay, double eps, bool maximize, bool check_only) {
        self.run(AdagradSpec{{lr, lr_decay, weight_decay, eps, maximize}}, grads, steps, increment, check_only);
      },
      py::arg("grads"), py::arg("steps"), py::arg("increment_steps"), py::arg("lr"), py::arg("lr_decay"),
      py::arg("weight_decay"), py::arg("eps"), py::arg("maximize"), py::arg("check_only") = false);

  m.def(
      "rmsprop",
      [](py::handle params, py::handle grads, py::handle square_avgs, py::handle momentum_buffers,
         py::handle grad_avgs, py::handle steps, bool increment, double lr, double alpha, double eps,
         double weight_decay, double momentum, bool centered, bool maximize, bool check_only) {
        update(RmspropSpec{{lr, alpha, eps, weight_decay, momentum, centered, maximize}}, params, grads,
               {square_avgs, momentum_buffers, grad_avgs}, steps, increment, check_only);
      },
      py::arg("params"), py::arg("grads"), py::arg("square_avgs"), py::arg("momentum_buffers"),
      py::arg("grad_avgs"), py::arg("steps"), py::arg("increment_steps"), py::arg("lr"), py::arg("alpha"),
      py::arg("eps"), py::arg("weight_decay"), py::arg("momentum"), py::arg("centered"), py::arg("maximize"),
      py::arg("check_only") = false);
  plan.def(
      "rmsprop",
      [](const Plan& self, py::handle grads, py::handle steps, bool increment, double lr, double alpha, double eps,
         double weight_decay, double momentum, bool centered, bool maximize, bool check_only) {
        self.run(RmspropSpec{{lr, alpha, eps, weight_decay, momentum, centered, maximize}}, grads, steps,
                 increment, check_only);
      },
      py::arg("grads"), py::arg("steps"), py::arg("increment_steps"), py::arg("lr"), py::arg("alpha"),
      py::arg("eps"), py::arg("weight_decay"), py::arg("momentum"), py::arg("centered"), py::arg("maximize"),
      py::arg("check_only") = false);

  m.def(
      "adadelta",
      [](py::handle params, py::handle grads, py::handle square_avgs, py::handle acc_deltas, py::handle steps,
         bool increment, double lr, double rho, double eps, double weight_decay, bool maximize, bool check_only) {
        update(AdadeltaSpec{{lr, rho, eps, weight_decay, maximize}}, params, grads,
               {square_avgs, acc_deltas, py::none()}, steps, increment, check_only);
      },
      py::arg("params"), py::arg("grads"), py::arg("square_avgs"), py::arg("acc_deltas"), py::arg("steps"),
      py::arg("increment_steps"), py::arg("lr"), py::arg("rho"), py::arg("eps"), py::arg("weight_decay"),
      py::arg("maximize"), py::arg("check_only") = false);
  plan.def(
      "adadelta",
      [](const Plan& self, py::handle grads, py::handle steps, bool increment, double lr, double rho, double eps,
         double weight_decay, bool maximize, bool check_only) {
        self.run(AdadeltaSpec{{lr, rho, eps, weight_decay, maximize}}, grads, steps, increment, check_only);
      },
      py::arg("grads"), py::arg("steps"), py::arg("increment_steps"), py::arg("lr"), py::arg("rho"),
      py::arg("eps"), py::arg("weight_decay"), py::arg("maximize"), py::arg("check_only") = false);

  m.def(
      "adam",
      [](py::handle params, py::handle grads, py::handle exp_avgs, py::handle exp_avg_sqs,
         py::handle max_exp_avg_sqs, py::handle steps, bool increment, double lr, double beta1, double beta2,
         double eps, double weight_decay, bool amsgrad, bool maximize, bool decoupled_weight_decay,
         bool check_only) {
        update(AdamSpec{{lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay}}, params,
               grads, {exp_avgs, exp_avg_sqs, max_exp_avg_sqs}, steps, increment, check_only);
      },
      py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
      py::arg("max_exp_avg_sqs"), py::arg("steps"), py::arg("increment_steps"), py::arg("lr"), py::arg("beta1"),
      py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("amsgrad"), py::arg("maximize"),
      py::arg("decoupled_weight_decay"), py::arg("check_only") = false);
  plan.def(
      "adam",
      [](const Plan& self, py::handle grads, py::handle steps, bool increment, double lr, double beta1,
         double beta2, double eps, double weight_decay, bool amsgrad, bool maximize, bool decoupled_weight_decay,
         bool check_only) {
        self.run(AdamSpec{{lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay}}, grads,
                 steps, increment, check_only);
      },
      py::arg("grads"), py::arg("steps"), py::arg("increment_steps"), py::arg("lr"), py::arg("beta1"),
      py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("amsgrad"), py::arg("maximize"),
      py::arg("decoupled_weight_decay"), py::arg("check_only") = false);

  m.def("grad_norm", &grad_norm, py::arg("grads"), py::arg("norm_type"),
        "Global norm of a list of arrays (None entries skipped), accumulated in double; the same "
        "bits for any thread count and instruction set.");
  m.def(
      "scale_", [](py::handle arrays, double factor) { map_arrays("scale_", arrays, MapKind::Scale, factor, 0.0); },
      py::arg("arrays"), py::arg("factor"), "Multiplies every array in place (None entries skipped).");
  m.def(
      "clamp_", [](py::handle arrays, double lo, double hi) { map_arrays("clamp_", arrays, MapKind::Clamp, lo, hi); },
      py::arg("arrays"), py::arg("lo"), py::arg("hi"), "Clamps every array to [lo, hi] in place; NaN stays NaN.");
  m.def(
      "sqrt_", [](py::handle arrays) { map_arrays("sqrt_", arrays, MapKind::Sqrt, 0.0, 0.0); }, py::arg("arrays"),
      "Square root of every array in place with the update kernels' square root (for tests: on AVX-512 float32 it "
      "runs on the FMA units and must give the hardware instruction's bits).");
  m.def(
      "stream_triad", [](py::handle a, py::handle b, py::handle c, double s) { stream("stream_triad", a, b, c, s); },
      py::arg("a"), py::arg("b"), py::arg("c"), py::arg("scalar"),
      "STREAM triad a = b + scalar * c, parallel like the optimizer kernels (bandwidth probe; the store "
      "to a also reads a into cache first, so it moves 4 arrays' bytes, not 3).");
  m.def(
      "stream_axpy", [](py::handle a, py::handle b, double s) { stream("stream_axpy", a, b, py::none(), s); },
      py::arg("a"), py::arg("b"), py::arg("scalar"),
      "a += scalar * b in place, parallel like the optimizer kernels: the read-modify-write pattern of "
      "an optimizer update (bandwidth probe; moves 3 arrays' bytes).");
  m.def("stream_update", &stream_update, py::arg("written"), py::arg("read"), py::arg("scalar"),
        "Each of the 1 to 4 written arrays += scalar * read, in place, parallel like the optimizer kernels: the "
        "memory traffic of an update with len(written) - 1 states and the least arithmetic (bandwidth probe; "
        "moves 2 * len(written) + 1 arrays' bytes).");
  m.def("divider_probe", &divider, py::arg("a"), py::arg("b"), py::arg("square_roots"), py::arg("divisions"),
        py::arg("repeats"), py::arg("divisor") = 1.0,
        "a = b / sqrt(a) in place, repeated, with square_roots (0: a = b / a; 1; or 2: b's root too) square roots and "
        "divisions (1 or 2: the root divided by divisor first) per element, parallel like the optimizer "
        "kernels: the issue rate of the square-root and division units (compute floor probe; keep a "
        "and b in cache, start them in [1, 2)).");
  m.def("get_num_threads", &get_num_threads, "Threads the kernels use (1 without OpenMP).");
  m.def(
      "set_num_threads",
      [](py::handle n) {
        if (PyBool_Check(n.ptr()) || !PyIndex_Check(n.ptr()))
          throw py::type_error("set_num_threads: n must be an int, got " + type_name(n));
        const auto index = py::reinterpret_steal<py::object>(PyNumber_Index(n.ptr()));
        if (!index) throw py::error_already_set();
        int overflow = 0;
        const long long value = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
        if (overflow != 0 || value < 1 || value > std::numeric_limits<int>::max())
          throw py::value_error("set_num_threads: n must be >= 1 and < 2**31, got " + std::string(py::str(index)));
        set_num_threads(static_cast<int>(value));
      },
      py::arg("n"), "Sets the number of threads the kernels use (ignored without OpenMP).");
  m.def("same_items", &same_items, py::arg("a"), py::arg("b"),
        "Whether two lists or tuples hold the same objects (by identity) in the same order.");
  m.def("same_values", &same_values, py::arg("group"), py::arg("keys"), py::arg("checked"), py::arg("types"),
        "Whether group[k] == checked[i] with type types[i] for the i-th key k of the dict keys.");
  m.def("fast_step", &fast_step, py::arg("optimizer"), py::arg("grads"),
        "The optimizer classes' short step path: True if it stepped, False (nothing written) to "
        "leave the step to the full path.");
  m.def("build_info", &build_info, "How this extension was built and which kernel variant runs.");
}
