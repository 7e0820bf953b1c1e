// One registration function per op, each in csrc/bind/<op>.cpp, called from module.cpp.
#pragma once
#include <pybind11/pybind11.h>

namespace fastnn::bind {

void bind_gemm(pybind11::module_& m);
void bind_pool2d(pybind11::module_& m);
void bind_act(pybind11::module_& m);
void bind_conv2d(pybind11::module_& m);
void bind_softmax(pybind11::module_& m);
void bind_optim(pybind11::module_& m);
void bind_batchnorm(pybind11::module_& m);
void bind_embedding(pybind11::module_& m);
void bind_rnn(pybind11::module_& m);
void bind_layernorm(pybind11::module_& m);
void bind_attention(pybind11::module_& m);
void bind_word2vec(pybind11::module_& m);

}  // namespace fastnn::bind
