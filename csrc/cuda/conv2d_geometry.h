// Conv2dGeom from fastnn.cuda._conv2d_geometry's dict (the CPU op's size rules, checked there):
// shared by the fastnn._cuda binding and the emulator's test module.
#pragma once
#include <pybind11/pybind11.h>

#include "cuda/kernels.h"

namespace fastnn {
namespace cuda {

inline Conv2dGeom conv2d_geometry(const pybind11::dict& d) {
  Conv2dGeom g;
  auto get = [&](const char* k) { return d[k].cast<int64_t>(); };
  g.N = get("N"), g.C = get("C"), g.H = get("H"), g.W = get("W"), g.OC = get("OC"), g.KH = get("KH");
  g.KW = get("KW"), g.SH = get("SH"), g.SW = get("SW"), g.PT = get("PT"), g.PB = get("PB"), g.PL = get("PL");
  g.PR = get("PR"), g.DH = get("DH"), g.DW = get("DW"), g.G = get("G"), g.OH = get("OH"), g.OW = get("OW");
  return g;
}

}  // namespace cuda
}  // namespace fastnn
