// The addon's argument checks, shared by its source files: each turns a wrong argument into a
// JS TypeError or RangeError that names it, before any memory is touched.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace peerless {

// A Float32Array argument with the length its shape says; throws a JS TypeError otherwise.
inline float *floats(const Napi::Value &v, size_t want, const char *what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a Float32Array");
  }
  auto a = v.As<Napi::Float32Array>();
  if (a.ElementLength() != want) {
    throw Napi::RangeError::New(v.Env(), std::string(what) + " has " + std::to_string(a.ElementLength()) +
                                             " elements, its shape says " + std::to_string(want));
  }
  return a.Data();
}

inline std::vector<int64_t> ints(const Napi::Value &v, size_t n, const char *what) {
  if (!v.IsArray() || v.As<Napi::Array>().Length() != n) {
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an array of " + std::to_string(n) + " integers");
  }
  auto a = v.As<Napi::Array>();
  std::vector<int64_t> out(n);
  for (uint32_t i = 0; i < n; i++) out[i] = a.Get(i).As<Napi::Number>().Int64Value();
  return out;
}

inline size_t count(const std::vector<int64_t> &s) {
  size_t n = 1;
  for (auto d : s) n *= static_cast<size_t>(d);
  return n;
}

}  // namespace peerless
