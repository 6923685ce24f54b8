// The gradients of 2-D max and average pooling over NHWC tensors, for the `native` backend:
// one pass over the windows, with the channels innermost. wasm's are general slow paths.
//
//   maxPoolGrad(x, xShape, dy, dyShape, dx, pool)
//   avgPoolGrad(dy, dyShape, dx, dxShape, pool)
//   pool = [filterH, filterW, strideH, strideW, padTop, padLeft]
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "args.h"
#include "kernels.h"

namespace peerless {
namespace {

// Calls f(pixel) for each position of output (oh, ow)'s window inside an H x W image, in row
// order; pixel = h * W + w. pool = [filterH, filterW, strideH, strideW, padTop, padLeft].
template <typename F>
inline void forWindow(const std::vector<int64_t> &p, int64_t oh, int64_t ow, int64_t H, int64_t W, F f) {
  for (int64_t kh = 0; kh < p[0]; kh++) {
    int64_t h = oh * p[2] - p[4] + kh;
    if (h < 0 || h >= H) continue;
    for (int64_t kw = 0; kw < p[1]; kw++) {
      int64_t w = ow * p[3] - p[5] + kw;
      if (w < 0 || w >= W) continue;
      f(h * W + w);
    }
  }
}

// [filterH, filterW, strideH, strideW, padTop, padLeft]: a window and strides of at least 1.
std::vector<int64_t> poolArg(const Napi::Value &v) {
  auto p = ints(v, 6, "pool");
  if (p[0] < 1 || p[1] < 1 || p[2] < 1 || p[3] < 1) throw Napi::RangeError::New(v.Env(), "pool: the window and strides must be at least 1");
  return p;
}

// The gradient of a max pool (NHWC): each dy goes to the first maximum of its window in x, as
// TensorFlow.js's cpu kernel (maxPoolPositions) finds it: the first pixel greater than all
// before it, from -Infinity, so NaNs are passed over and a window of only -Infinity or NaN
// passes no gradient. pool = [filterH, filterW, strideH, strideW, padTop, padLeft].
Napi::Value MaxPoolGrad(const Napi::CallbackInfo &info) {
  auto xs = dims(info[1], 4, "xShape"), dys = dims(info[3], 4, "dyShape");
  const float *x = floats(info[0], count(xs), "x"), *dy = floats(info[2], count(dys), "dy");
  float *dx = floats(info[4], count(xs), "dx");
  auto p = poolArg(info[5]);
  const int64_t N = xs[0], H = xs[1], W = xs[2], C = xs[3], OH = dys[1], OW = dys[2];
  if (dys[0] != N || dys[3] != C) throw Napi::RangeError::New(info.Env(), "maxPoolGrad: dy and x differ in batch or channels");
  std::fill(dx, dx + count(xs), 0.0f);
  std::vector<float> best(static_cast<size_t>(C));
  std::vector<int64_t> at(static_cast<size_t>(C));
  for (int64_t n = 0; n < N; n++) {
    const float *xn = x + n * H * W * C;
    float *dxn = dx + n * H * W * C;
    for (int64_t oh = 0; oh < OH; oh++) {
      for (int64_t ow = 0; ow < OW; ow++) {
        std::fill(best.begin(), best.end(), -INFINITY);
        std::fill(at.begin(), at.end(), -1);
        forWindow(p, oh, ow, H, W, [&](int64_t pixel) {
          const float *px = xn + pixel * C;
          for (int64_t c = 0; c < C; c++) {
            if (px[c] > best[c]) { best[c] = px[c]; at[c] = pixel * C + c; }
          }
        });
        const float *g = dy + ((n * OH + oh) * OW + ow) * C;
        for (int64_t c = 0; c < C; c++) if (at[c] >= 0) dxn[at[c]] += g[c];
      }
    }
  }
  return info.Env().Undefined();
}

// The gradient of an average pool (NHWC), as TensorFlow.js's cpu kernel computes it: each dy
// spreads over its window's inputs inside the tensor, times 1 / (filterH * filterW) whatever
// the padding.
Napi::Value AvgPoolGrad(const Napi::CallbackInfo &info) {
  auto dys = dims(info[1], 4, "dyShape"), xs = dims(info[3], 4, "dxShape");
  const float *dy = floats(info[0], count(dys), "dy");
  float *dx = floats(info[2], count(xs), "dx");
  auto p = poolArg(info[4]);
  const int64_t N = xs[0], H = xs[1], W = xs[2], C = xs[3], OH = dys[1], OW = dys[2];
  if (dys[0] != N || dys[3] != C) throw Napi::RangeError::New(info.Env(), "avgPoolGrad: dy and dx differ in batch or channels");
  const float scale = 1.0f / static_cast<float>(p[0] * p[1]);
  std::fill(dx, dx + count(xs), 0.0f);
  for (int64_t n = 0; n < N; n++) {
    float *dxn = dx + n * H * W * C;
    for (int64_t oh = 0; oh < OH; oh++) {
      for (int64_t ow = 0; ow < OW; ow++) {
        const float *g = dy + ((n * OH + oh) * OW + ow) * C;
        forWindow(p, oh, ow, H, W, [&](int64_t pixel) {
          float *px = dxn + pixel * C;
          for (int64_t c = 0; c < C; c++) px[c] += g[c] * scale;
        });
      }
    }
  }
  return info.Env().Undefined();
}

}  // namespace

void addPoolKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("maxPoolGrad", entry(env, "maxPoolGrad", MaxPoolGrad));
  exports.Set("avgPoolGrad", entry(env, "avgPoolGrad", AvgPoolGrad));
}

}  // namespace peerless
