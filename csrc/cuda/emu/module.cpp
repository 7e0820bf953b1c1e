// _fastnn_cuda_emu: the CUDA kernels of csrc/cuda, compiled as host C++ against the emulator
// (host memory stands in for device memory). A test-only module: built with
// -DFASTNN_CUDA_EMULATION=ON, never installed. Its submodule `device` is fastnn._cuda's own
// entries (csrc/cuda/module.cpp), which tests call with the CPU entries' arguments on
// tests/fake_cupy.py's arrays; `selftest` runs the emulator's own test kernels
// (csrc/cuda/emu/selftest.cu). Outputs start as NaN, so an element never written shows.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <limits>
#include <string>
#include <vector>

namespace fastnn {
namespace cuda {
void emu_selftest(const std::string& name, const float* in, float* out, int n);
}
}  // namespace fastnn

namespace py = pybind11;
using Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

namespace {

Array poisoned_like(const std::vector<py::ssize_t>& shape) {
  Array out(shape);
  float* p = out.mutable_data();
  for (py::ssize_t i = 0; i < out.size(); ++i) p[i] = std::numeric_limits<float>::quiet_NaN();
  return out;
}

std::vector<py::ssize_t> shape_of(const Array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

Array selftest(const std::string& name, Array in) {
  Array out = poisoned_like(shape_of(in));
  fastnn::cuda::emu_selftest(name, in.data(), out.mutable_data(), static_cast<int>(in.size()));
  return out;
}

}  // namespace

// csrc/cuda/module.cpp's bindings (fastnn._cuda's), compiled against the emulator.
void fastnn_cuda_bind_device(py::module_& m);

PYBIND11_MODULE(_fastnn_cuda_emu, m) {
  m.doc() = "fastnn's CUDA kernels run by the host emulator (tests only)";
  py::module_ device = m.def_submodule("device",
                                       "fastnn._cuda's entries on the emulator: device pointers "
                                       "are host pointers");
  fastnn_cuda_bind_device(device);
  m.def("selftest", &selftest,
        "Runs one of csrc/cuda/emu/selftest.cu's kernels (one block of in.size threads)");
}
