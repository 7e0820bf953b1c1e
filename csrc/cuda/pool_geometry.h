// PoolGeom from fastnn._core.pool2d_geometry's dict: shared by the fastnn._cuda binding and the
// emulator's test module.
#pragma once
#include <pybind11/pybind11.h>

#include "cuda/kernels.h"

namespace fastnn {
namespace cuda {

inline PoolGeom pool_geometry(const pybind11::dict& d) {
  PoolGeom g;
  auto get = [&](const char* k) { return d[k].cast<int64_t>(); };
  g.N = get("N"), g.C = get("C"), g.H = get("H"), g.W = get("W"), g.KH = get("KH"), g.KW = get("KW");
  g.SH = get("SH"), g.SW = get("SW"), g.PH = get("PH"), g.PW = get("PW"), g.DH = get("DH"), g.DW = get("DW");
  g.OH = get("OH"), g.OW = get("OW");
  return g;
}

}  // namespace cuda
}  // namespace fastnn
