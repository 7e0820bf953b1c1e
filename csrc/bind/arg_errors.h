// ArgError (csrc/core/args.h) as Python's TypeError or ValueError. Every module that binds an
// op's meta function registers the translation once (fastnn._core, fastnn._cuda).
#pragma once
#include <pybind11/pybind11.h>

#include <exception>

#include "core/args.h"

namespace fastnn::bind {

inline void register_arg_errors() {
  pybind11::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ArgError& e) {
      PyErr_SetString(e.kind() == ArgError::Type ? PyExc_TypeError : PyExc_ValueError, e.what());
    }
  });
}

}  // namespace fastnn::bind
