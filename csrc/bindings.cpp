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
#include <vector>

#include "fusedoptim/kernels.hpp"
#include "fusedoptim/runtime.hpp"

namespace py = pybind11;
using namespace fusedoptim;

namespace {

constexpr int kMaxStates = 3;

std::string type_name(py::handle h) { return py::str(py::type::handle_of(h).attr("__name__")); }

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

  // Checks one array and returns it. `param` is the array it must match (nullptr for a parameter
  // itself, which must match the dtype of the call instead). The common path reads numpy's structs
  // directly and builds no strings: it runs for every array of every call.
  py::array check(const char* list, std::size_t i, py::handle h, bool writeable,
                  const py::array* param, int call_type_num) const {
    auto where = [&] { return std::string(list) + "[" + std::to_string(i) + "]"; };
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
        type_error(where() + " has dtype " + dtype_string(a) + " but params[" + std::to_string(i) +
                   "] has dtype " + dtype_string(*param));
      if (!same_shape(a, *param))
        value_error(where() + " has shape " + shape_string(a) + " but params[" + std::to_string(i) +
                    "] has shape " + shape_string(*param));
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
          value_error(std::string(names[b]) + "[" + std::to_string(i) + "] shares memory with " +
                      names[a] + "[" + std::to_string(i) + "]; each must be a separate array");
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
  static constexpr int kMaxLists = 2 + kMaxStates;

  void add(int list_slot, const Span& span, bool written, const char* list, std::size_t index) {
    if (span.begin != span.end) runs_[list_slot].push_back({span.begin, span.end, written, list, index});
  }

  void check(const Checker& check) {
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
        check.value_error(std::string(later.list) + "[" + std::to_string(later.index) + "] shares memory with " +
                          earlier.list + "[" + std::to_string(earlier.index) +
                          "]; arrays that a call writes must not overlap any other array of the call");
      }
      if (reaches_furthest == nullptr || range.end > reaches_furthest->end) reaches_furthest = &range;
      if (range.written && (written_reaches_furthest == nullptr || range.end > written_reaches_furthest->end))
        written_reaches_furthest = &range;
    }
  }

 private:
  struct Range {
    const char* begin;
    const char* end;
    bool written;
    const char* list;
    std::size_t index;
  };

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

// One state list of an optimizer call: its name, the tuple (or None) and whether the options use it.
struct StateList {
  const char* name;
  py::handle seq;
  bool used;
};

// The validated arguments of a multi-tensor update, ready for the kernel.
struct UpdatePlan {
  int type_num = -1;
  std::vector<std::size_t> index;         // which tensors have a gradient
  std::vector<py::array> arrays;          // per active tensor: param, grad, states (kept alive)
  std::vector<std::int64_t> step_values;  // the step each active tensor takes
  std::vector<Extent> extents;
  int states_used = 0;
  std::array<int, kMaxStates> state_slot{};  // state list -> slot in TensorPointers
  py::object steps;                           // the step counts to increment, if asked to
};

UpdatePlan plan_update(const Checker& check, py::handle params_in, py::handle grads_in,
                       std::array<StateList, kMaxStates> states, py::handle steps_in, bool increment) {
  const char* op = check.op();
  py::tuple params = as_tuple(op, "params", params_in);
  py::tuple grads = as_tuple(op, "grads", grads_in);
  const std::size_t n = params.size();
  if (grads.size() != n)
    check.value_error("grads has " + std::to_string(grads.size()) + " entries but params has " +
                      std::to_string(n));
  std::array<py::tuple, kMaxStates> state_tuples;
  for (int s = 0; s < kMaxStates; ++s) {
    if (!states[s].used || states[s].name == nullptr) continue;
    if (states[s].seq.is_none())
      check.value_error(std::string(states[s].name) + " is None but the chosen options need it");
    state_tuples[s] = as_tuple(op, states[s].name, states[s].seq);
    if (state_tuples[s].size() != n)
      check.value_error(std::string(states[s].name) + " has " + std::to_string(state_tuples[s].size()) +
                        " entries but params has " + std::to_string(n));
  }
  if (!py::isinstance<py::array>(steps_in))
    check.type_error("steps must be a numpy.ndarray of int64, got " + type_name(steps_in));
  py::array steps = py::reinterpret_borrow<py::array>(steps_in);
  if (steps.dtype().kind() != 'i' || steps.itemsize() != 8 || steps.dtype().byteorder() == '>' || steps.ndim() != 1 ||
      static_cast<std::size_t>(steps.shape(0)) != n ||
      !(steps.flags() & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) ||
      !(steps.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    check.value_error("steps must be a contiguous 1-D int64 array with one entry per parameter (" +
                      std::to_string(n) + ")");
  if (increment && !(steps.flags() & py::detail::npy_api::NPY_ARRAY_WRITEABLE_))
    check.value_error("steps is read-only but increment_steps is True");
  const auto* step_data = static_cast<const std::int64_t*>(steps.data());

  UpdatePlan plan;
  plan.index.reserve(n);
  plan.step_values.reserve(n);
  plan.extents.reserve(n);
  for (int s = 0; s < kMaxStates; ++s)
    if (states[s].used && states[s].name != nullptr) plan.state_slot[plan.states_used++] = s;
  const int per_tensor = 2 + plan.states_used;
  plan.arrays.reserve(n * per_tensor);
  OverlapChecker overlaps;
  std::array<const char*, 2 + kMaxStates> names{"params", "grads"};
  for (int k = 0; k < plan.states_used; ++k) names[2 + k] = states[plan.state_slot[k]].name;

  for (std::size_t i = 0; i < n; ++i) {
    py::handle g = grads[i];
    if (g.is_none()) continue;
    if (plan.type_num < 0) {
      py::handle p0 = params[i];
      if (py::isinstance<py::array>(p0)) plan.type_num = py::reinterpret_borrow<py::array>(p0).dtype().num();
    }
    py::array param = check.check("params", i, params[i], true, nullptr, plan.type_num);
    std::array<Span, 2 + kMaxStates> spans{};
    spans[0] = span_of(param);
    plan.arrays.push_back(param);
    py::array grad = check.check("grads", i, g, false, &param, plan.type_num);
    spans[1] = span_of(grad);
    plan.arrays.push_back(grad);
    for (int k = 0; k < plan.states_used; ++k) {
      const int s = plan.state_slot[k];
      py::array state = check.check(states[s].name, i, state_tuples[s][i], true, &param, plan.type_num);
      spans[2 + k] = span_of(state);
      plan.arrays.push_back(state);
    }
    check.check_disjoint(i, names, spans, per_tensor);
    for (int k = 0; k < per_tensor; ++k) overlaps.add(k, spans[k], k != 1, names[k], i);
    if (increment && step_data[i] == std::numeric_limits<std::int64_t>::max())
      check.value_error("steps[" + std::to_string(i) + "] cannot be incremented past the largest int64");
    const std::int64_t step = step_data[i] + (increment ? 1 : 0);
    if (step < 1)
      check.value_error("steps[" + std::to_string(i) + "] is " + std::to_string(step_data[i]) +
                        (increment ? "; step counts cannot be negative"
                                   : "; the step being taken must be >= 1 (steps are 1-based)"));
    plan.index.push_back(i);
    plan.step_values.push_back(step);
    plan.extents.push_back({element_count(param), reinterpret_cast<std::uintptr_t>(spans[0].begin)});
  }
  overlaps.check(check);
  if (increment) plan.steps = steps;
  return plan;
}

template <class T, class Hyper, class Select>
void run_update(const UpdatePlan& plan, const Hyper& hyper, Select&& select) {
  const UpdateFn<T, Hyper> fn = select(kernels<T>());
  const int per_tensor = 2 + plan.states_used;
  std::vector<TensorPointers<T>> tensors(plan.index.size());
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    const py::array* a = &plan.arrays[t * per_tensor];
    T* state[kMaxStates] = {nullptr, nullptr, nullptr};
    for (int k = 0; k < plan.states_used; ++k)
      state[plan.state_slot[k]] = static_cast<T*>(const_cast<void*>(a[2 + k].data()));
    tensors[t] = {static_cast<T*>(const_cast<void*>(a[0].data())), static_cast<const T*>(a[1].data()),
                  state[0], state[1], state[2]};
  }
  py::gil_scoped_release release;
  for_each_range(plan.extents, sizeof(T), [&](std::size_t t, std::int64_t begin, std::int64_t end) {
    const TensorPointers<T>& base = tensors[t];
    const TensorPointers<T> piece{base.param + begin, base.grad + begin,
                                  base.state0 ? base.state0 + begin : nullptr,
                                  base.state1 ? base.state1 + begin : nullptr,
                                  base.state2 ? base.state2 + begin : nullptr};
    fn(hyper, plan.step_values[t], piece, end - begin);
  });
}

// Checks every argument, then (unless check_only) increments the step counts and updates.
template <class Hyper, class Select>
void update(const char* op, const Hyper& hyper, py::handle params, py::handle grads,
            std::array<StateList, kMaxStates> states, py::handle steps, bool increment, bool check_only,
            Select&& select) {
  const Checker check(op);
  const UpdatePlan plan = plan_update(check, params, grads, states, steps, increment);
  if (check_only) return;
  // Everything is valid: from here on the call writes. The kernels take their steps from the
  // plan, so the counts are incremented last, once nothing can fail any more.
  if (!plan.index.empty()) {
    if (plan.type_num == py::detail::npy_api::NPY_FLOAT_) run_update<float>(plan, hyper, select);
    else run_update<double>(plan, hyper, select);
  }
  if (plan.steps) {
    auto* counts = static_cast<std::int64_t*>(py::reinterpret_borrow<py::array>(plan.steps).mutable_data());
    for (std::size_t i : plan.index) counts[i] += 1;
  }
}

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
    auto reduce_block = [&](std::size_t b) {
      const Block& block = blocks[b];
      const py::array& a = plan.arrays[block.array];
      partial[b] = is_float[block.array]
                       ? kernels<float>().norm[k](data_of<float>(a) + block.begin, block.size, norm_type)
                       : kernels<double>().norm[k](data_of<double>(a) + block.begin, block.size, norm_type);
    };
    const int threads = threads_for(total);
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
  const py::array a = check.check("a", 0, a_in, true, nullptr, type_num);
  const py::array b = check.check("b", 0, b_in, false, &a, type_num);
  py::array c;
  if (!c_in.is_none()) c = check.check("c", 0, c_in, false, &a, type_num);
  const Span empty{nullptr, nullptr};
  check.check_disjoint(0, {"a", "b", "c", nullptr, nullptr},
                       {span_of(a), span_of(b), c_in.is_none() ? empty : span_of(c), empty, empty}, 3);
  const bool triad = c_in.is_none() == false;
  if (type_num == py::detail::npy_api::NPY_FLOAT_)
    run_stream<float>(triad ? kernels<float>().triad : kernels<float>().axpy, a, b, triad ? &c : nullptr, s);
  else
    run_stream<double>(triad ? kernels<double>().triad : kernels<double>().axpy, a, b, triad ? &c : nullptr, s);
}

py::dict build_info() {
  py::dict info;
  const Dispatch& d = dispatch();
  info["isa"] = d.isa;
  info["isa_supported"] = d.supported;
  info["isa_compiled"] = d.compiled;
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

int index_of(bool flag) { return flag ? 1 : 0; }

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fusedoptim's compiled kernels. Use fusedoptim.functional or the optimizer classes.";
  init_dispatch();

  m.def(
      "sgd",
      [](py::handle params, py::handle grads, py::handle momentum_buffers, py::handle steps, bool increment,
         double lr, double momentum, double dampening, bool nesterov, double weight_decay, bool maximize, bool check_only) {
        const SgdHyper h{lr, momentum, dampening, weight_decay, nesterov, maximize};
        const bool uses_momentum = momentum != 0.0;
        update("sgd", h, params, grads, {{{"momentum_buffers", momentum_buffers, uses_momentum}, {}, {}}},
               steps, increment, check_only, [&](const auto& k) {
                 return k.sgd[index_of(weight_decay != 0.0)][index_of(uses_momentum)][index_of(nesterov)];
               });
      },
      py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("steps"),
      py::arg("increment_steps"), py::arg("lr"), py::arg("momentum"), py::arg("dampening"),
      py::arg("nesterov"), py::arg("weight_decay"), py::arg("maximize"), py::arg("check_only") = false);

  m.def(
      "adagrad",
      [](py::handle params, py::handle grads, py::handle state_sums, py::handle steps, bool increment, double lr,
         double lr_decay, double weight_decay, double eps, bool maximize, bool check_only) {
        const AdagradHyper h{lr, lr_decay, weight_decay, eps, maximize};
        update("adagrad", h, params, grads, {{{"state_sums", state_sums, true}, {}, {}}}, steps, increment, check_only,
               [&](const auto& k) { return k.adagrad[index_of(weight_decay != 0.0)]; });
      },
      py::arg("params"), py::arg("grads"), py::arg("state_sums"), py::arg("steps"), py::arg("increment_steps"),
      py::arg("lr"), py::arg("lr_decay"), py::arg("weight_decay"), py::arg("eps"), py::arg("maximize"), py::arg("check_only") = false);

  m.def(
      "rmsprop",
      [](py::handle params, py::handle grads, py::handle square_avgs, py::handle momentum_buffers,
         py::handle grad_avgs, py::handle steps, bool increment, double lr, double alpha, double eps,
         double weight_decay, double momentum, bool centered, bool maximize, bool check_only) {
        const RmspropHyper h{lr, alpha, eps, weight_decay, momentum, centered, maximize};
        const bool uses_momentum = momentum > 0.0;
        update("rmsprop", h, params, grads,
               {{{"square_avgs", square_avgs, true},
                 {"momentum_buffers", momentum_buffers, uses_momentum},
                 {"grad_avgs", grad_avgs, centered}}},
               steps, increment, check_only, [&](const auto& k) {
                 return k.rmsprop[index_of(weight_decay != 0.0)][index_of(uses_momentum)][index_of(centered)];
               });
      },
      py::arg("params"), py::arg("grads"), py::arg("square_avgs"), py::arg("momentum_buffers"),
      py::arg("grad_avgs"), py::arg("steps"), py::arg("increment_steps"), py::arg("lr"), py::arg("alpha"),
      py::arg("eps"), py::arg("weight_decay"), py::arg("momentum"), py::arg("centered"), py::arg("maximize"), py::arg("check_only") = false);

  m.def(
      "adadelta",
      [](py::handle params, py::handle grads, py::handle square_avgs, py::handle acc_deltas, py::handle steps,
         bool increment, double lr, double rho, double eps, double weight_decay, bool maximize,
         bool check_only) {
        const AdadeltaHyper h{lr, rho, eps, weight_decay, maximize};
        update("adadelta", h, params, grads,
               {{{"square_avgs", square_avgs, true}, {"acc_deltas", acc_deltas, true}, {}}}, steps, increment, check_only,
               [&](const auto& k) { return k.adadelta[index_of(weight_decay != 0.0)]; });
      },
      py::arg("params"), py::arg("grads"), py::arg("square_avgs"), py::arg("acc_deltas"), py::arg("steps"),
      py::arg("increment_steps"), py::arg("lr"), py::arg("rho"), py::arg("eps"), py::arg("weight_decay"),
      py::arg("maximize"), py::arg("check_only") = false);

  m.def(
      "adam",
      [](py::handle params, py::handle grads, py::handle exp_avgs, py::handle exp_avg_sqs,
         py::handle max_exp_avg_sqs, py::handle steps, bool increment, double lr, double beta1, double beta2,
         double eps, double weight_decay, bool amsgrad, bool maximize, bool decoupled_weight_decay,
         bool check_only) {
        const AdamHyper h{lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay};
        const WeightDecay decay = weight_decay == 0.0    ? WeightDecay::None
                                  : decoupled_weight_decay ? WeightDecay::Decoupled
                                                           : WeightDecay::L2;
        update("adam", h, params, grads,
               {{{"exp_avgs", exp_avgs, true},
                 {"exp_avg_sqs", exp_avg_sqs, true},
                 {"max_exp_avg_sqs", max_exp_avg_sqs, amsgrad}}},
               steps, increment, check_only,
               [&](const auto& k) { return k.adam[static_cast<int>(decay)][index_of(amsgrad)]; });
      },
      py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
      py::arg("max_exp_avg_sqs"), py::arg("steps"), py::arg("increment_steps"), py::arg("lr"), py::arg("beta1"),
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
      "stream_triad", [](py::handle a, py::handle b, py::handle c, double s) { stream("stream_triad", a, b, c, s); },
      py::arg("a"), py::arg("b"), py::arg("c"), py::arg("scalar"),
      "STREAM triad a = b + scalar * c, parallel like the optimizer kernels (bandwidth probe; the store "
      "to a also reads a into cache first, so it moves 4 arrays' bytes, not 3).");
  m.def(
      "stream_axpy", [](py::handle a, py::handle b, double s) { stream("stream_axpy", a, b, py::none(), s); },
      py::arg("a"), py::arg("b"), py::arg("scalar"),
      "a += scalar * b in place, parallel like the optimizer kernels: the read-modify-write pattern of "
      "an optimizer update (bandwidth probe; moves 3 arrays' bytes).");
  m.def("get_num_threads", &get_num_threads, "Threads the kernels use (1 without OpenMP).");
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Sets the number of threads the kernels use (ignored without OpenMP).");
  m.def("build_info", &build_info, "How this extension was built and which kernel variant runs.");
}
