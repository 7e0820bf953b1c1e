// The optimizer updates' and grad_norm's rules on every device: the meta functions of
// csrc/ops/optim.h.
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "ops/optim.h"

namespace fastnn {
namespace {

using List = std::vector<ArrayRef>;

// Every element float32 and C-contiguous, writeable where the update writes it; a list other
// than params holds one array per param.
void check_list(const char* op, const char* name, const List& xs, size_t n, bool writeable) {
  if (n != static_cast<size_t>(-1) && xs.size() != n) {
    arg_value_fail(op, std::string("expected ") + name + " to hold " + std::to_string(n) +
                           " arrays (one per param), got " + std::to_string(xs.size()));
  }
  for (const ArrayRef& x : xs) {
    check_f32(op, x);
    if (writeable && !x.writeable) {
      arg_value_fail(op, std::string("expected ") + x.name + " to be writeable, got a read-only array");
    }
  }
}

// No array that the update writes may share a byte with any other array of the call (results
// would depend on the order of the threads' writes); read-only arrays (grads) may share memory
// with each other. One sort and a sweep: a range that starts before the furthest end of an
// earlier range overlaps it (a stable sort: ranges that start together are reported in the
// order of the call's arguments).
struct Range {
  uintptr_t lo, hi;
  bool written;
  const char* label;
};

void require_disjoint(const char* op, std::vector<Range> rs) {
  std::stable_sort(rs.begin(), rs.end(), [](const Range& a, const Range& b) { return a.lo < b.lo; });
  const Range* far_any = nullptr;  // the earlier range reaching furthest
  const Range* far_written = nullptr;
  for (const Range& r : rs) {
    const Range* hit = r.written ? far_any : far_written;
    if (hit && r.lo < hit->hi) {
      arg_value_fail(op, std::string("expected ") + r.label + " not to share memory with " + hit->label +
                             " (every written array must be distinct), got overlapping arrays");
    }
    if (!far_any || r.hi > far_any->hi) far_any = &r;
    if (r.written && (!far_written || r.hi > far_written->hi)) far_written = &r;
  }
}

// The tensors of an update: params, grads and up to three state lists (null: unused), checked.
std::vector<OptimTensor> tensors(const char* op, const List& ps, const List& gs,
                                 std::initializer_list<std::pair<const char*, const List*>> states) {
  constexpr size_t kAnyLength = static_cast<size_t>(-1);
  check_list(op, "params", ps, kAnyLength, true);
  check_list(op, "grads", gs, ps.size(), false);
  for (const auto& [name, xs] : states)
    if (xs) check_list(op, name, *xs, ps.size(), true);
  std::vector<OptimTensor> ts(ps.size());
  std::vector<Range> ranges;
  ranges.reserve(ps.size() * (2 + states.size()));
  auto add_range = [&](const ArrayRef& a, bool written) {
    if (a.nbytes() == 0) return;
    ranges.push_back({a.data, a.data + static_cast<uintptr_t>(a.nbytes()), written, a.name});
  };
  for (size_t i = 0; i < ps.size(); ++i) {
    auto same_shape = [&](const ArrayRef& a) {
      if (a.shape != ps[i].shape) {
        arg_value_fail(op, std::string("expected ") + a.name + " of " + ps[i].name + "'s shape " +
                               shape_str(ps[i].shape) + ", got " + shape_str(a.shape));
      }
    };
    same_shape(gs[i]);
    ts[i].n = ps[i].numel();
    ts[i].p = ps[i].ptr<float>();
    ts[i].g = gs[i].ptr<const float>();
    add_range(ps[i], true);
    add_range(gs[i], false);
    float** slots[3] = {&ts[i].a, &ts[i].b, &ts[i].c};
    size_t k = 0;
    for (const auto& [name, xs] : states) {
      if (xs) {
        same_shape((*xs)[i]);
        *slots[k] = (*xs)[i].ptr<float>();
        add_range((*xs)[i], true);
      }
      ++k;
    }
  }
  require_disjoint(op, std::move(ranges));
  return ts;
}

void finite_arg(const char* op, const char* name, double v) {
  if (!std::isfinite(v))
    arg_value_fail(op, std::string("expected a finite ") + name + ", got " + std::to_string(v));
}

}  // namespace

std::vector<OptimTensor> sgd_step_meta(const SgdArgs& a, const List& params, const List& grads,
                                       const List* momentum_buffers) {
  const char* op = "sgd_step";
  if (a.nesterov && (a.momentum <= 0 || a.dampening != 0)) {
    arg_value_fail(op, "Nesterov momentum requires a momentum and zero dampening, got momentum=" +
                           std::to_string(a.momentum) + ", dampening=" + std::to_string(a.dampening));
  }
  const bool uses = sgd_uses_buffers(a);
  if (uses && !momentum_buffers) arg_value_fail(op, "expected momentum_buffers with momentum != 0, got None");
  return tensors(op, params, grads, {{"momentum_buffers", uses ? momentum_buffers : nullptr}});
}

std::vector<OptimTensor> adam_step_meta(const AdamArgs& a, const List& params, const List& grads,
                                        const List* exp_avgs, const List* exp_avg_sqs,
                                        const List* max_exp_avg_sqs) {
  const char* op = "adam_step";
  if (a.step < 1) {
    arg_value_fail(op, "expected step >= 1 (the step after incrementing), got " + std::to_string(a.step));
  }
  finite_arg(op, "beta1", a.beta1);
  finite_arg(op, "beta2", a.beta2);
  if (!exp_avgs || !exp_avg_sqs) arg_value_fail(op, "expected exp_avgs and exp_avg_sqs lists, got None");
  if (a.amsgrad && !max_exp_avg_sqs) arg_value_fail(op, "expected max_exp_avg_sqs with amsgrad, got None");
  return tensors(op, params, grads,
                 {{"exp_avgs", exp_avgs},
                  {"exp_avg_sqs", exp_avg_sqs},
                  {"max_exp_avg_sqs", a.amsgrad ? max_exp_avg_sqs : nullptr}});
}

GradNormArgs grad_norm_meta(double norm_type, const List& arrays) {
  const char* op = "grad_norm";
  if (!(norm_type > 0)) {
    arg_value_fail(op, "expected norm_type > 0 (2.0, 1.0, inf or another positive order), got " +
                           std::to_string(norm_type));
  }
  check_list(op, "arrays", arrays, static_cast<size_t>(-1), false);
  GradNormArgs g;
  g.p = norm_type;
  g.xs.reserve(arrays.size());
  g.ns.reserve(arrays.size());
  for (const ArrayRef& x : arrays) {
    g.xs.push_back(x.ptr<const float>());
    g.ns.push_back(x.numel());
  }
  return g;
}

}  // namespace fastnn
