// Batch normalisation in training mode for the `native` backend (norm.cc).
#pragma once
#include <napi.h>

namespace peerless {

// Adds batchNormTraining and batchNormTrainingGrad to the addon's exports.
void addNormKernels(Napi::Env env, Napi::Object exports);

}  // namespace peerless
