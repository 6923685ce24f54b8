// Concatenation and its gradient (a split) along any axis, for the `native` backend: a
// tensor seen as `outer` rows, each input owning a run of `inner_i` elements in every output
// row, so each is a run of memcpy. DenseNet's concatenations and their gradients went through
// wasm's general slice and copy paths (12% of its gradient).
//
//   concatRows(inputs[], inners[], outer, out): out row r = input 0's row r, input 1's, ...
//   splitRows(x, outer, inners[], outputs[]): the reverse
#include <napi.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "args.h"
#include "kernels.h"

namespace peerless {
namespace {

struct Parts {
  std::vector<float *> data;
  std::vector<size_t> inner;
  size_t row = 0;  // elements of one whole row: the sum of the inners
};

Parts parts(const Napi::CallbackInfo &info, const Napi::Value &arrays, const Napi::Value &inners, size_t outer, const char *what) {
  if (!arrays.IsArray() || !inners.IsArray() || arrays.As<Napi::Array>().Length() != inners.As<Napi::Array>().Length() ||
      arrays.As<Napi::Array>().Length() == 0) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + ": tensors and inner sizes must be arrays of one non-zero length");
  }
  auto a = arrays.As<Napi::Array>(), n = inners.As<Napi::Array>();
  Parts p;
  for (uint32_t i = 0; i < a.Length(); i++) {
    size_t inner = static_cast<size_t>(dimension(n.Get(i), "an inner size"));
    p.inner.push_back(inner);
    p.data.push_back(floats(a.Get(i), times(outer, inner), "a part"));
    p.row += inner;  // each inner < 2^31, and fewer than 2^32 parts: no wrap
    times(outer, p.row);
  }
  return p;
}

size_t outerArg(const Napi::CallbackInfo &info, int at, const char *what) {
  return static_cast<size_t>(dimension(info[at], (std::string(what) + ": outer").c_str()));
}

Napi::Value ConcatRows(const Napi::CallbackInfo &info) {
  size_t outer = outerArg(info, 2, "concatRows");
  Parts p = parts(info, info[0], info[1], outer, "concatRows");
  float *out = floats(info[3], times(outer, p.row), "out");
  for (size_t r = 0; r < outer; r++) {
    float *dst = out + r * p.row;
    for (size_t i = 0; i < p.data.size(); i++) {
      std::memcpy(dst, p.data[i] + r * p.inner[i], p.inner[i] * sizeof(float));
      dst += p.inner[i];
    }
  }
  return info.Env().Undefined();
}

Napi::Value SplitRows(const Napi::CallbackInfo &info) {
  size_t outer = outerArg(info, 1, "splitRows");
  Parts p = parts(info, info[3], info[2], outer, "splitRows");
  const float *x = floats(info[0], times(outer, p.row), "x");
  for (size_t r = 0; r < outer; r++) {
    const float *src = x + r * p.row;
    for (size_t i = 0; i < p.data.size(); i++) {
      std::memcpy(p.data[i] + r * p.inner[i], src, p.inner[i] * sizeof(float));
      src += p.inner[i];
    }
  }
  return info.Env().Undefined();
}

}  // namespace

void addCopyKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("concatRows", entry(env, "concatRows", ConcatRows));
  exports.Set("splitRows", entry(env, "splitRows", SplitRows));
}

}  // namespace peerless
