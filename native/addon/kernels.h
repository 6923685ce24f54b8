// The addon's kernels beyond the convolutions, each file adding its own to the exports.
#pragma once
#include <napi.h>

namespace peerless {

void addNormKernels(Napi::Env env, Napi::Object exports);  // norm.cc: batch norm in training
void addPoolKernels(Napi::Env env, Napi::Object exports);  // pool.cc: max and average pool gradients
void addCopyKernels(Napi::Env env, Napi::Object exports);  // copy.cc: concat and split
void addMatMulKernels(Napi::Env env, Napi::Object exports);  // matmul.cc: batched matrix products

}  // namespace peerless
