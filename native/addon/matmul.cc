// Batched matrix products on oneDNN's matmul, for the `native` backend's BatchMatMul (every
// Dense layer, forward and both gradients). Operands stay where TensorFlow.js keeps them; a
// transposed operand is described by its strides, so no transpose runs before the product.
//
//   batchMatMul(a, aShape, b, bShape, out, transposeA, transposeB)
//   aShape = [batchA, rowsA, colsA], bShape = [batchB, rowsB, colsB] as stored; the batches are
//   equal, or one of them is 1 (broadcast). out: [max(batchA, batchB), M, N].
#include <napi.h>

#include <algorithm>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>

#include "args.h"
#include "kernels.h"
#include "onednn.h"

namespace peerless {
namespace {

using dnnl::memory;
using dt = dnnl::memory::data_type;

// The logical [batch, rows, cols] of a stored [batch, r, c] operand, transposed or not.
memory::desc operand(const std::vector<int64_t> &s, bool transposed) {
  int64_t batch = s[0], r = s[1], c = s[2];
  if (!transposed) return memory::desc({batch, r, c}, dt::f32, memory::dims{r * c, c, 1});
  return memory::desc({batch, c, r}, dt::f32, memory::dims{r * c, 1, c});
}

Napi::Value BatchMatMul(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto as = dims(info[1], 3, "aShape"), bs = dims(info[3], 3, "bShape");
  bool ta = info[5].ToBoolean().Value(), tb = info[6].ToBoolean().Value();
  int64_t m = ta ? as[2] : as[1], k = ta ? as[1] : as[2];
  int64_t kb = tb ? bs[2] : bs[1], n = tb ? bs[1] : bs[2];
  if (k != kb) throw Napi::RangeError::New(env, "batchMatMul: inner dimensions differ (" + std::to_string(k) + " and " + std::to_string(kb) + ")");
  if (as[0] != bs[0] && as[0] != 1 && bs[0] != 1)
    throw Napi::RangeError::New(env, "batchMatMul: batches " + std::to_string(as[0]) + " and " + std::to_string(bs[0]) + " neither match nor broadcast");
  int64_t batch = std::max(as[0], bs[0]);
  float *a = floats(info[0], count(as), "a"), *b = floats(info[2], count(bs), "b");
  float *out = floats(info[4], count({batch, m, n}), "out");
  product(operand(as, ta), a, operand(bs, tb), b, memory::desc({batch, m, n}, dt::f32, memory::dims{m * n, n, 1}), out);
  return env.Undefined();
}

}  // namespace

void product(const memory::desc &ad, const float *a, const memory::desc &bd, const float *b, const memory::desc &od, float *out,
             const float *bias, bool relu) {
  // Empty operands never reach oneDNN (its matmul divides by K = 0, SIGFPE): with M or N = 0
  // there is nothing to write; with K = 0 the sum is empty, so out = relu(bias) or 0.
  const memory::dims odims = od.dims();
  size_t rows = 1, n = static_cast<size_t>(odims.back());
  for (size_t i = 0; i + 1 < odims.size(); i++) rows *= static_cast<size_t>(odims[i]);
  if (rows == 0 || n == 0) return;
  if (ad.dims().back() == 0) {
    for (size_t i = 0; i < rows * n; i++) {
      float v = bias ? bias[i % n] : 0.0f;
      out[i] = relu ? std::max(v, 0.0f) : v;
    }
    return;
  }
  int rank = od.dims().size();
  memory::dims biasDims(rank, 1), biasStrides(rank, 0);
  biasDims[rank - 1] = od.dims()[rank - 1];
  biasStrides[rank - 1] = 1;
  memory::desc biasd = bias ? memory::desc(biasDims, dt::f32, biasStrides) : memory::desc();
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(ad, bd, biasd, od), attributes(relu), engine());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(ad, engine(), const_cast<float *>(a))},
                                       {DNNL_ARG_WEIGHTS, memory(bd, engine(), const_cast<float *>(b))},
                                       {DNNL_ARG_DST, memory(od, engine(), out)},
                                       {DNNL_ARG_SCRATCHPAD, scratchpad(pd.scratchpad_desc())}};
  if (bias) args.insert({DNNL_ARG_BIAS, memory(biasd, engine(), const_cast<float *>(bias))});
  dnnl::matmul(pd).execute(stream(), args);
  stream().wait();
}

void addMatMulKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("batchMatMul", entry(env, "batchMatMul", BatchMatMul));
}

}  // namespace peerless
