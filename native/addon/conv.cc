// peerless_native: TensorFlow.js's convolution kernels on oneDNN (Debian's libdnnl), for the
// `native` backend (src/model/native-backend.ts). Tensors stay in TensorFlow.js's layouts
// (NHWC activations, HWIO filters): oneDNN reads and writes them in place, so no reorder
// runs between calls. A convolution on a 1x1 map, where each output reads one tap of the
// filter, runs as a matrix product with that tap (singleTap); a 3x3 one with many channels
// as a Winograd convolution (useWinograd), on blocked copies of its activations. Every
// function fills an output array the caller allocated.
//
//   conv2d(x, xShape, w, wShape, y, yShape, geometry[, bias, relu]): bias (one per output
//     channel, or null) and a ReLU applied by oneDNN as the convolution writes y
//   conv2dBackpropInput(dy, dyShape, w, wShape, dx, dxShape, geometry)
//   conv2dBackpropFilter(x, xShape, dy, dyShape, dw, wShape, geometry)
//   geometry = [strideH, strideW, dilationH, dilationW, padTop, padLeft, padBottom, padRight]
//   conv2dKernel(xShape, wShape, yShape, geometry) -> the forward's implementation ("matmul",
//     or oneDNN's name of it: "jit_wino_4x3:avx512_core", "brgconv:avx512_core", ...)
//   sumRows(x, rows, cols, out, scale): column sums of a rows x cols matrix, times scale
//   batchNormTraining, batchNormTrainingGrad: norm.cc
//   maxPoolGrad, avgPoolGrad: pool.cc
//   concatRows, splitRows: copy.cc
//   batchMatMul: matmul.cc
//   setThreads(n), info() -> { isa, version, threads }
#include <napi.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "args.h"
#include "kernels.h"
#include "onednn.h"

using peerless::count;
using peerless::product;
using peerless::attributes;
using peerless::scratch;
using peerless::scratchpad;
using peerless::kIn;
using peerless::kIn2;
using peerless::kOut;
using peerless::kWeights;
using Slot = peerless::Scratch;
using peerless::engine;
using peerless::stream;
using peerless::floats;
using peerless::ints;
using peerless::dims;
using peerless::guarded;
using peerless::entry;

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace {

struct Geometry {
  memory::dims strides, dilates, padL, padR;
};

// NHWC shape -> oneDNN's logical NCHW dims in the nhwc layout.
memory::desc activations(const std::vector<int64_t> &s) {
  return memory::desc({s[0], s[3], s[1], s[2]}, dt::f32, tag::nhwc);
}

// HWIO filter shape (TensorFlow's [fh, fw, in, out]) -> logical OIHW dims in the hwio layout.
memory::desc filters(const std::vector<int64_t> &s) {
  return memory::desc({s[3], s[2], s[0], s[1]}, dt::f32, tag::hwio);
}

Geometry geometry(const Napi::Value &v) {
  auto g = ints(v, 8, "geometry");
  // oneDNN counts dilation from 0 (no gap), TensorFlow from 1.
  return {{g[0], g[1]}, {g[2] - 1, g[3] - 1}, {g[4], g[5]}, {g[6], g[7]}};
}

// The weights in whatever layout oneDNN's fastest kernel wants (`any`): with TensorFlow's HWIO
// fixed it falls back to a gemm-based convolution; activations stay NHWC, which the direct
// kernels read as they are. Weights are small beside activations, so reordering them per call
// is cheap.
memory::desc anyWeights(const memory::desc &w) {
  return memory::desc(w.dims(), dt::f32, tag::any);
}

dnnl::convolution_forward::primitive_desc forwardDesc(const memory::desc &src, const memory::desc &wei,
                                                      const memory::desc &dst, const Geometry &g,
                                                      const memory::desc &bias = memory::desc(), bool relu = false,
                                                      dnnl::algorithm alg = dnnl::algorithm::convolution_direct) {
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, alg, src, anyWeights(wei), bias, dst, g.strides,
                                    g.dilates, g.padL, g.padR);
  return dnnl::convolution_forward::primitive_desc(d, attributes(relu), engine());
}

// Whether a convolution runs as Winograd's F(4x4, 3x3): about half the multiplications of the
// direct one, so each pass takes 0.57-0.78x as long on resnet18's and vgg11's 3x3 layers, the
// reorders of its activations to and from the blocked layout it needs included (measured one
// thread, batch 64; docs/benchmarks.md). With fewer channels (densenet's 32 outputs, the cnn's
// 32 inputs) or a map under 3x3 the reorders and tiles cost more than the saving; where the
// scratchpad is large, memory decides (scratchpadFits). PyTorch's oneDNN convolutions are
// direct. The choice depends on the shapes and the thread count alone, so a run's bytes do not
// vary between runs; the results stay within the kernel tests' tolerances of the direct ones.
bool useWinograd(const std::vector<int64_t> &ys, const std::vector<int64_t> &ws, const Geometry &g) {
  bool threeByThree = ws[0] == 3 && ws[1] == 3;
  bool unit = g.strides[0] == 1 && g.strides[1] == 1 && g.dilates[0] == 0 && g.dilates[1] == 0;
  return threeByThree && unit && ws[2] >= 64 && ws[3] >= 64 && ys[1] >= 3 && ys[2] >= 3;
}

// The same activation dims in whatever layout the kernel wants (Winograd reads blocked ones).
memory::desc anyLayout(const memory::desc &d) {
  return memory::desc(d.dims(), dt::f32, tag::any);
}

// `user` in layout `want` in a scratch buffer (a reorder), or itself when it is already so.
memory inScratch(const memory &user, const memory::desc &want, Slot slot) {
  if (user.get_desc() == want) return user;
  memory out(want, engine(), scratch(slot, want.get_size()));
  dnnl::reorder(user, out).execute(stream(), const_cast<memory &>(user), out);
  return out;
}

// A scratch buffer in layout `d` for a kernel to write; `user` itself when it is already so.
memory outScratch(const memory &user, const memory::desc &d, Slot slot) {
  return user.get_desc() == d ? user : memory(d, engine(), scratch(slot, d.get_size()));
}

// Copies a kernel's output from its scratch layout into the caller's array (if not written there).
void toUser(memory &written, memory &user) {
  if (written.get_data_handle() != user.get_data_handle()) dnnl::reorder(written, user).execute(stream(), written, user);
}

using ForwardDesc = dnnl::convolution_forward::primitive_desc;

// Winograd's scratchpad holds its transformed filters and tiles: 7-12 MB for a 64x64 or 128x128
// filter at any batch, but 35-93 MB for 256x256 and 512x512 ones on 7x7 to 3x3 maps, which would
// lift vgg11's peak RSS above the wasm backend's (the target). A pass runs on Winograd
// only where its scratchpad is at most 16 MiB or 4x the activations it reads and writes anyway
// (more layers qualify at larger batches).
bool scratchpadFits(const memory::desc &pad, const memory::desc &in, const memory::desc &out) {
  size_t bytes = pad.get_size();
  return bytes <= (size_t(16) << 20) || bytes <= 4 * (in.get_size() + out.get_size());
}

// The Winograd forward description when the shapes call for it, this machine's oneDNN has one
// (it needs AVX-512) and its scratchpad fits (scratchpadFits), else none.
std::optional<ForwardDesc> winogradForward(const std::vector<int64_t> &ys, const std::vector<int64_t> &ws,
                                           const memory::desc &src, const memory::desc &wei, const memory::desc &dst,
                                           const Geometry &g, const memory::desc &bias = memory::desc(),
                                           bool relu = false) {
  if (!useWinograd(ys, ws, g)) return std::nullopt;
  try {
    auto pd = forwardDesc(anyLayout(src), wei, anyLayout(dst), g, bias, relu, dnnl::algorithm::convolution_winograd);
    if (scratchpadFits(pd.scratchpad_desc(), src, dst)) return pd;
  } catch (const dnnl::error &) {
  }
  return std::nullopt;
}

// The forward description a convolution of these shapes runs: Winograd where it qualifies, else
// direct. conv2d and conv2dKernel both ask here, so the kernel reported is the one that runs.
ForwardDesc chosenForward(const std::vector<int64_t> &ys, const std::vector<int64_t> &ws, const memory::desc &src,
                          const memory::desc &wei, const memory::desc &dst, const Geometry &g,
                          const memory::desc &bias = memory::desc(), bool relu = false) {
  auto wino = winogradForward(ys, ws, src, wei, dst, g, bias, relu);
  return wino ? *wino : forwardDesc(src, wei, dst, g, bias, relu);
}

// A backward pass's description, `make(hint, algorithm)`: Winograd after a Winograd forward
// when oneDNN has it and its scratchpad fits, else direct after the direct forward.
template <typename Make>
auto backwardDesc(const std::vector<int64_t> &ys, const std::vector<int64_t> &ws, const memory::desc &src,
                  const memory::desc &wei, const memory::desc &dst, const Geometry &g, Make make) {
  if (auto wino = winogradForward(ys, ws, src, wei, dst, g)) {
    try {
      auto pd = make(*wino, dnnl::algorithm::convolution_winograd);
      if (scratchpadFits(pd.scratchpad_desc(), wino->src_desc(), wino->dst_desc())) return pd;
    } catch (const dnnl::error &) {
    }
  }
  return make(forwardDesc(src, wei, dst, g), dnnl::algorithm::convolution_direct);
}

// The filter's [in, out] slice that a convolution's every output reads alone, or -1. On a
// 1x1 map with 'same' padding (vgg11's last block at 28x28) each output sees one tap, the
// others only padding; oneDNN's kernels would still run all taps on zeros and reorder the
// whole filter for each pass. HWIO keeps a tap's slice contiguous, so the pass is a matrix
// product with it, and the filter's gradient is zero outside it.
int64_t singleTap(const std::vector<int64_t> &xs, const std::vector<int64_t> &ws, const std::vector<int64_t> &ys, const Geometry &g) {
  bool onePixel = xs[1] == 1 && xs[2] == 1 && ys[1] == 1 && ys[2] == 1;
  bool undilated = g.dilates[0] == 0 && g.dilates[1] == 0;
  int64_t kh = g.padL[0], kw = g.padL[1];
  if (!onePixel || !undilated || kh < 0 || kw < 0 || kh >= ws[0] || kw >= ws[1]) return -1;
  return (kh * ws[1] + kw) * ws[2] * ws[3];
}

// A row-major [rows, cols] matrix, or its transpose read through strides.
memory::desc matrix(int64_t rows, int64_t cols, bool transposed = false) {
  return transposed ? memory::desc({cols, rows}, dt::f32, memory::dims{1, cols}) : memory::desc({rows, cols}, dt::f32, memory::dims{cols, 1});
}

// out = relu(bias) per column (or 0) for a convolution that sums over nothing (no input
// channels, an empty batch for a filter's gradient): oneDNN is not asked about empty shapes.
void fillBias(float *out, size_t n, const float *bias, size_t channels, bool relu) {
  for (size_t i = 0; i < n; i++) {
    float v = bias && channels > 0 ? bias[i % channels] : 0.0f;
    out[i] = relu ? std::max(v, 0.0f) : v;
  }
}

Napi::Value Conv2d(const Napi::CallbackInfo &info) {
  auto xs = dims(info[1], 4, "xShape"), ws = dims(info[3], 4, "wShape"), ys = dims(info[5], 4, "yShape");
  float *x = floats(info[0], count(xs), "x"), *w = floats(info[2], count(ws), "w"), *y = floats(info[4], count(ys), "y");
  Geometry g = geometry(info[6]);
  // The fused op's bias and ReLU: applied while the output is still in cache, where a pass of
  // their own over a large output cost more than the convolution itself.
  bool hasBias = info.Length() > 7 && !info[7].IsNull() && !info[7].IsUndefined();
  float *b = hasBias ? floats(info[7], static_cast<size_t>(ys[3]), "bias") : nullptr;
  bool relu = info.Length() > 8 && info[8].ToBoolean().Value();
  if (count(ys) == 0) return info.Env().Undefined();
  if (count(xs) == 0 || count(ws) == 0) {
    fillBias(y, count(ys), b, static_cast<size_t>(ys[3]), relu);
    return info.Env().Undefined();
  }
  int64_t tap = singleTap(xs, ws, ys, g);
  if (tap >= 0) {
    product(matrix(xs[0], xs[3]), x, matrix(ws[2], ws[3]), w + tap, matrix(ys[0], ys[3]), y, b, relu);
    return info.Env().Undefined();
  }
  auto src = activations(xs), wei = filters(ws), dst = activations(ys);
  memory::desc bd = hasBias ? memory::desc({ys[3]}, dt::f32, tag::a) : memory::desc();
  auto pd = chosenForward(ys, ws, src, wei, dst, g, bd, relu);
  memory sm(src, engine(), x), wm(wei, engine(), w), dm(dst, engine(), y);
  memory sk = inScratch(sm, pd.src_desc(), kIn), wk = inScratch(wm, pd.weights_desc(), kWeights);
  memory dk = outScratch(dm, pd.dst_desc(), kOut);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, sk}, {DNNL_ARG_WEIGHTS, wk}, {DNNL_ARG_DST, dk},
                                       {DNNL_ARG_SCRATCHPAD, scratchpad(pd.scratchpad_desc())}};
  if (hasBias) args.insert({DNNL_ARG_BIAS, memory(bd, engine(), b)});
  dnnl::convolution_forward(pd).execute(stream(), args);
  toUser(dk, dm);
  stream().wait();
  return info.Env().Undefined();
}

Napi::Value Conv2dBackpropInput(const Napi::CallbackInfo &info) {
  auto dys = dims(info[1], 4, "dyShape"), ws = dims(info[3], 4, "wShape"), dxs = dims(info[5], 4, "dxShape");
  float *dy = floats(info[0], count(dys), "dy"), *w = floats(info[2], count(ws), "w"), *dx = floats(info[4], count(dxs), "dx");
  Geometry g = geometry(info[6]);
  if (count(dxs) == 0) return info.Env().Undefined();
  if (count(dys) == 0 || count(ws) == 0) {
    fillBias(dx, count(dxs), nullptr, 0, false);
    return info.Env().Undefined();
  }
  // dx = dy . tap^T
  int64_t tap = singleTap(dxs, ws, dys, g);
  if (tap >= 0) {
    product(matrix(dys[0], dys[3]), dy, matrix(ws[2], ws[3], true), w + tap, matrix(dxs[0], dxs[3]), dx);
    return info.Env().Undefined();
  }
  auto dsrc = activations(dxs), wei = filters(ws), ddst = activations(dys);
  auto make = [&](const ForwardDesc &hint, dnnl::algorithm alg) {
    dnnl::convolution_backward_data::desc d(alg, hint.src_desc(), anyWeights(wei), hint.dst_desc(), g.strides,
                                            g.dilates, g.padL, g.padR);
    return dnnl::convolution_backward_data::primitive_desc(d, attributes(), engine(), hint);
  };
  auto pd = backwardDesc(dys, ws, dsrc, wei, ddst, g, make);
  memory dym(ddst, engine(), dy), wm(wei, engine(), w), dxm(dsrc, engine(), dx);
  memory dyk = inScratch(dym, pd.diff_dst_desc(), kIn), wk = inScratch(wm, pd.weights_desc(), kWeights);
  memory dxk = outScratch(dxm, pd.diff_src_desc(), kOut);
  dnnl::convolution_backward_data(pd).execute(stream(),
                                              {{DNNL_ARG_DIFF_DST, dyk},
                                               {DNNL_ARG_WEIGHTS, wk},
                                               {DNNL_ARG_DIFF_SRC, dxk},
                                               {DNNL_ARG_SCRATCHPAD, scratchpad(pd.scratchpad_desc())}});
  toUser(dxk, dxm);
  stream().wait();
  return info.Env().Undefined();
}

Napi::Value Conv2dBackpropFilter(const Napi::CallbackInfo &info) {
  auto xs = dims(info[1], 4, "xShape"), dys = dims(info[3], 4, "dyShape"), ws = dims(info[5], 4, "wShape");
  float *x = floats(info[0], count(xs), "x"), *dy = floats(info[2], count(dys), "dy"), *dw = floats(info[4], count(ws), "dw");
  Geometry g = geometry(info[6]);
  if (count(ws) == 0) return info.Env().Undefined();
  if (count(xs) == 0 || count(dys) == 0) {
    fillBias(dw, count(ws), nullptr, 0, false);
    return info.Env().Undefined();
  }
  // The tap's slice = x^T . dy; every other tap only ever read padding.
  int64_t tap = singleTap(xs, ws, dys, g);
  if (tap >= 0) {
    std::fill(dw, dw + count(ws), 0.0f);
    product(matrix(xs[0], xs[3], true), x, matrix(dys[0], dys[3]), dy, matrix(ws[2], ws[3]), dw + tap);
    return info.Env().Undefined();
  }
  auto src = activations(xs), dwei = filters(ws), ddst = activations(dys);
  auto make = [&](const ForwardDesc &hint, dnnl::algorithm alg) {
    dnnl::convolution_backward_weights::desc d(alg, hint.src_desc(), anyWeights(dwei), hint.dst_desc(), g.strides,
                                               g.dilates, g.padL, g.padR);
    return dnnl::convolution_backward_weights::primitive_desc(d, attributes(), engine(), hint);
  };
  auto pd = backwardDesc(dys, ws, src, dwei, ddst, g, make);
  memory sm(src, engine(), x), dym(ddst, engine(), dy), dwm(dwei, engine(), dw);
  memory sk = inScratch(sm, pd.src_desc(), kIn), dyk = inScratch(dym, pd.diff_dst_desc(), kIn2);
  memory dwk = outScratch(dwm, pd.diff_weights_desc(), kWeights);
  dnnl::convolution_backward_weights(pd).execute(stream(),
                                                 {{DNNL_ARG_SRC, sk},
                                                  {DNNL_ARG_DIFF_DST, dyk},
                                                  {DNNL_ARG_DIFF_WEIGHTS, dwk},
                                                  {DNNL_ARG_SCRATCHPAD, scratchpad(pd.scratchpad_desc())}});
  toUser(dwk, dwm);
  stream().wait();
  return info.Env().Undefined();
}

// Which implementation the forward of a convolution of these shapes runs, for tests and
// profiles: the passes of a convolution follow the forward's choice.
Napi::Value Conv2dKernel(const Napi::CallbackInfo &info) {
  auto xs = dims(info[0], 4, "xShape"), ws = dims(info[1], 4, "wShape"), ys = dims(info[2], 4, "yShape");
  Geometry g = geometry(info[3]);
  std::string name = "matmul";
  if (singleTap(xs, ws, ys, g) < 0) {
    auto src = activations(xs), wei = filters(ws), dst = activations(ys);
    name = chosenForward(ys, ws, src, wei, dst, g).impl_info_str();
  }
  return Napi::String::New(info.Env(), name);
}

// out[c] = scale * sum over r of x[r * cols + c], in double: TensorFlow.js's Sum and Mean over
// the leading axes of an NHWC tensor (bias and batch-norm gradients, batch statistics), which
// wasm computes through a transpose.
Napi::Value SumRows(const Napi::CallbackInfo &info) {
  int64_t rows = peerless::dimension(info[1], "sumRows: rows"), cols = peerless::dimension(info[2], "sumRows: cols");
  const float *x = floats(info[0], peerless::times(rows, cols), "x");
  float *out = floats(info[3], static_cast<size_t>(cols), "out");
  double scale = info[4].As<Napi::Number>().DoubleValue();
  std::vector<double> acc(static_cast<size_t>(cols), 0.0);
  for (int64_t r = 0; r < rows; r++) {
    const float *row = x + r * cols;
    for (int64_t c = 0; c < cols; c++) acc[c] += row[c];
  }
  for (int64_t c = 0; c < cols; c++) out[c] = static_cast<float>(acc[c] * scale);
  return info.Env().Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo &info) {
  int n = static_cast<int>(peerless::integer(info[0], "threads", 1, 1025));
  omp_set_num_threads(n);
  return info.Env().Undefined();
}

Napi::Value Info(const Napi::CallbackInfo &info) {
  auto out = Napi::Object::New(info.Env());
  const dnnl_version_t *v = dnnl_version();
  out.Set("version", std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch));
  out.Set("isa", static_cast<int>(dnnl::get_effective_cpu_isa()));
  out.Set("threads", omp_get_max_threads());
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // One function instance per core by default: one thread (setThreads raises it).
  omp_set_num_threads(1);
  exports.Set("conv2d", entry(env, "conv2d", Conv2d));
  exports.Set("conv2dBackpropInput", entry(env, "conv2dBackpropInput", Conv2dBackpropInput));
  exports.Set("conv2dBackpropFilter", entry(env, "conv2dBackpropFilter", Conv2dBackpropFilter));
  exports.Set("conv2dKernel", entry(env, "conv2dKernel", Conv2dKernel));
  exports.Set("sumRows", entry(env, "sumRows", SumRows));
  peerless::addNormKernels(env, exports);
  peerless::addPoolKernels(env, exports);
  peerless::addCopyKernels(env, exports);
  peerless::addMatMulKernels(env, exports);
  exports.Set("setThreads", entry(env, "setThreads", SetThreads));
  exports.Set("info", entry(env, "info", Info));
  return exports;
}

}  // namespace

NODE_API_MODULE(peerless_native, Init)
