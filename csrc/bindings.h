// One registration function per kernel family; module.cpp calls them all.
#pragma once
#include <pybind11/pybind11.h>

namespace fastnn {
void bind_softmax_xent(pybind11::module_& m);
void bind_conv2d(pybind11::module_& m);
void bind_pool(pybind11::module_& m);
void bind_batch_norm(pybind11::module_& m);
void bind_lstm(pybind11::module_& m);
void bind_optim(pybind11::module_& m);
void bind_activation(pybind11::module_& m);
}  // namespace fastnn
