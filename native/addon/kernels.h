// The addon's kernels beyond the convolutions, each file adding its own to the exports.
#pragma once
#include <napi.h>

#include <oneapi/dnnl/dnnl.hpp>

namespace peerless {

// matmul.cc: out = a . b (+ bias per column) (then ReLU) on oneDNN's matmul, operands as
// described (a transposed one through its strides); the convolutions' 1x1-map case uses it too.
void product(const dnnl::memory::desc &ad, const float *a, const dnnl::memory::desc &bd, const float *b,
             const dnnl::memory::desc &od, float *out, const float *bias = nullptr, bool relu = false);

void addNormKernels(Napi::Env env, Napi::Object exports);  // norm.cc: batch norm in training
void addPoolKernels(Napi::Env env, Napi::Object exports);  // pool.cc: max and average pool gradients
void addCopyKernels(Napi::Env env, Napi::Object exports);  // copy.cc: concat and split
void addMatMulKernels(Napi::Env env, Napi::Object exports);  // matmul.cc: batched matrix products

}  // namespace peerless
