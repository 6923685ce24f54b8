// src/model/profile.ts
import * as tf6 from "@tensorflow/tfjs-core";

// src/model/backend.ts
import { createRequire as createRequire2 } from "node:module";
import { dirname, join } from "node:path";
import * as tf3 from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-layers";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";

// src/model/wasm-kernels.ts
import * as tf from "@tensorflow/tfjs-core";
import { backend_util } from "@tensorflow/tfjs-core";
var BACKEND = "wasm";
function asTensor(info) {
  if (info === void 0) throw new Error("wasm training kernel: missing input");
  if (info instanceof tf.Tensor) return info;
  return tf.engine().makeTensorFromTensorInfo(info);
}
function asTensor4D(info) {
  return asTensor(info);
}
function padOrCrop(x, top, bottom, left, right) {
  const [n, h, w, c] = x.shape;
  let y = x;
  if (top < 0 || bottom < 0 || left < 0 || right < 0) {
    const t = Math.max(0, -top);
    const l = Math.max(0, -left);
    y = tf.slice(y, [0, t, l, 0], [n, h - t - Math.max(0, -bottom), w - l - Math.max(0, -right), c]);
  }
  if (top > 0 || bottom > 0 || left > 0 || right > 0) {
    y = tf.pad(y, [[0, 0], [Math.max(0, top), Math.max(0, bottom)], [Math.max(0, left), Math.max(0, right)], [0, 0]]);
  }
  return y;
}
function dilateSpatial(x, sh, sw) {
  const [n, h, w, c] = x.shape;
  let y = x;
  if (sh > 1) {
    const r = tf.reshape(y, [n, h, 1, w * c]);
    y = tf.reshape(tf.pad(r, [[0, 0], [0, 0], [0, sh - 1], [0, 0]]), [n, h * sh, w, c]);
  }
  if (sw > 1) {
    const hh = y.shape[1];
    const r = tf.reshape(y, [n * hh, w, 1, c]);
    y = tf.reshape(tf.pad(r, [[0, 0], [0, 0], [0, sw - 1], [0, 0]]), [n, hh, w * sw, c]);
  }
  if (sh > 1 || sw > 1) y = tf.slice(y, [0, 0, 0, 0], [n, (h - 1) * sh + 1, (w - 1) * sw + 1, c]);
  return y;
}
function convInfo(xShape, filterShape, strides, pad2, dimRoundingMode, dataFormat) {
  if (dataFormat !== void 0 && dataFormat !== "NHWC") {
    throw new Error(`wasm training kernels support NHWC only, got dataFormat "${String(dataFormat)}"`);
  }
  return backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    strides,
    1,
    pad2,
    dimRoundingMode,
    false,
    "channelsLast"
  );
}
function conv2dBackpropFilterDilated(x, dy, filterShape, strides, pad2, dimRoundingMode, dataFormat) {
  return tf.tidy(() => {
    const info = convInfo(x.shape, filterShape, strides, pad2, dimRoundingMode, dataFormat);
    const xp = paddedToReadExtent(x, info);
    const xt = tf.transpose(xp, [3, 1, 2, 0]);
    const f = tf.transpose(dy, [1, 2, 0, 3]);
    const out = tf.conv2d(xt, f, 1, "valid", "NHWC", [info.strideHeight, info.strideWidth]);
    return tf.transpose(out, [1, 2, 0, 3]);
  });
}
function paddedToReadExtent(x, info) {
  const { top, left } = info.padInfo;
  const bottom = (info.outHeight - 1) * info.strideHeight + info.filterHeight - top - info.inHeight;
  const right = (info.outWidth - 1) * info.strideWidth + info.filterWidth - left - info.inWidth;
  return padOrCrop(x, top, bottom, left, right);
}
function conv2dBackpropFilter(x, dy, filterShape, strides, pad2, dimRoundingMode, dataFormat) {
  const info = convInfo(x.shape, filterShape, strides, pad2, dimRoundingMode, dataFormat);
  const [fh, fw, inC, outC] = filterShape;
  if (fh !== 1 || fw !== 1 || info.strideHeight !== 1 || info.strideWidth !== 1 || info.outHeight !== info.inHeight || info.outWidth !== info.inWidth) {
    return conv2dBackpropFilterDilated(x, dy, filterShape, strides, pad2, dimRoundingMode, dataFormat);
  }
  return tf.tidy(() => {
    const rows = x.shape[0] * info.outHeight * info.outWidth;
    const xf = tf.reshape(x, [rows, inC]);
    const dyf = tf.reshape(dy, [rows, outC]);
    return tf.reshape(tf.transpose(tf.matMul(dyf, xf, true, false)), [1, 1, inC, outC]);
  });
}
function conv2dBackpropInput(dy, filter, inputShape, strides, pad2, dimRoundingMode, dataFormat) {
  return tf.tidy(() => {
    const info = convInfo(inputShape, filter.shape, strides, pad2, dimRoundingMode, dataFormat);
    const [fh, fw] = [info.filterHeight, info.filterWidth];
    const [sh, sw] = [info.strideHeight, info.strideWidth];
    const { top, left } = info.padInfo;
    const d = dilateSpatial(dy, sh, sw);
    const pt = fh - 1 - top;
    const pl = fw - 1 - left;
    const pb = info.inHeight - d.shape[1] - pt + fh - 1;
    const pr = info.inWidth - d.shape[2] - pl + fw - 1;
    const dp = padOrCrop(d, pt, pb, pl, pr);
    const w = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]);
    return tf.conv2d(dp, w, 1, "valid");
  });
}
var backpropFilterKernel = ({ inputs, attrs }) => {
  const { x, dy } = inputs;
  const a = attrs;
  return conv2dBackpropFilter(
    asTensor4D(x),
    asTensor4D(dy),
    a["filterShape"],
    a["strides"],
    a["pad"],
    a["dimRoundingMode"],
    a["dataFormat"]
  );
};
var backpropInputKernel = ({ inputs, attrs }) => {
  const { dy, filter } = inputs;
  const a = attrs;
  return conv2dBackpropInput(
    asTensor4D(dy),
    asTensor4D(filter),
    a["inputShape"],
    a["strides"],
    a["pad"],
    a["dimRoundingMode"],
    a["dataFormat"]
  );
};
var shippedKernels = /* @__PURE__ */ new Map();
var batchMatMulKernel = (args) => {
  const base = shippedKernels.get(tf.BatchMatMul);
  if (base === void 0) throw new Error("wasm BatchMatMul kernel not found");
  const a = args.attrs;
  if (a["transposeA"] !== true && a["transposeB"] !== true) return base.kernelFunc(args);
  const { a: ai, b: bi } = args.inputs;
  const swapLast = (t) => {
    const perm = t.shape.map((_, i) => i);
    perm[t.rank - 2] = t.rank - 1;
    perm[t.rank - 1] = t.rank - 2;
    return tf.transpose(t, perm);
  };
  const at = a["transposeA"] === true ? swapLast(asTensor(ai)) : asTensor(ai);
  const bt = a["transposeB"] === true ? swapLast(asTensor(bi)) : asTensor(bi);
  try {
    return base.kernelFunc({ ...args, inputs: { a: at, b: bt }, attrs: { ...a, transposeA: false, transposeB: false } });
  } finally {
    if (at !== ai) at.dispose();
    if (bt !== bi) bt.dispose();
  }
};
var tileKernel = (args) => {
  const base = shippedKernels.get(tf.Tile);
  if (base === void 0) throw new Error("wasm Tile kernel not found");
  const { x } = args.inputs;
  const reps = args.attrs["reps"];
  if (x === void 0 || x.dtype !== "float32" || !x.shape.every((d, i) => d === 1 || reps[i] === 1)) return base.kernelFunc(args);
  return tf.tidy(() => tf.add(asTensor(x), tf.zeros(x.shape.map((d, i) => d * reps[i]))));
};
var shareData = (x, backend2) => {
  backend2.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};
var identityKernel = (args) => {
  const { x } = args.inputs;
  const base = shippedKernels.get(tf.Identity);
  if (x === void 0 || base === void 0) throw new Error("wasm Identity kernel not found");
  return x.dtype === "string" ? base.kernelFunc(args) : shareData(x, args.backend);
};
var castKernel = (args) => {
  const { x } = args.inputs;
  const base = shippedKernels.get(tf.Cast);
  if (x === void 0 || base === void 0) throw new Error("wasm Cast kernel not found");
  return x.dtype === args.attrs["dtype"] && x.dtype !== "string" ? shareData(x, args.backend) : base.kernelFunc(args);
};
var ours = [
  { kernelName: tf.Identity, backendName: BACKEND, kernelFunc: identityKernel },
  { kernelName: tf.Cast, backendName: BACKEND, kernelFunc: castKernel },
  { kernelName: tf.Tile, backendName: BACKEND, kernelFunc: tileKernel },
  { kernelName: tf.Conv2DBackpropFilter, backendName: BACKEND, kernelFunc: backpropFilterKernel },
  { kernelName: tf.Conv2DBackpropInput, backendName: BACKEND, kernelFunc: backpropInputKernel },
  { kernelName: tf.BatchMatMul, backendName: BACKEND, kernelFunc: batchMatMulKernel }
];
var registered = false;
function registerWasmTrainingKernels() {
  if (registered) return;
  for (const k of ours) {
    const existing = tf.getKernel(k.kernelName, BACKEND);
    if (existing !== void 0) {
      shippedKernels.set(k.kernelName, existing);
      tf.unregisterKernel(k.kernelName, BACKEND);
    }
    const wraps = k.kernelName !== tf.Conv2DBackpropFilter && k.kernelName !== tf.Conv2DBackpropInput;
    tf.registerKernel(wraps && existing?.setupFunc !== void 0 ? { ...k, setupFunc: existing.setupFunc } : k);
  }
  registered = true;
}

// src/model/native-backend.ts
import { createRequire } from "node:module";
import * as tf2 from "@tensorflow/tfjs-core";
import { backend_util as backend_util2 } from "@tensorflow/tfjs-core";
var NATIVE = "native";
var HOST = "wasm";
var ADDON = "../../native/addon/build/Release/peerless_native.node";
var loaded;
function nativeAddon() {
  if (loaded === void 0) {
    try {
      loaded = createRequire(import.meta.url)(ADDON);
      const threads = Number(process.env.PEERLESS_NATIVE_THREADS ?? 1);
      if (Number.isInteger(threads) && threads > 1) loaded.setThreads(threads);
    } catch (err) {
      const why = err.message.split("\n")[0];
      loaded = new Error(`the native backend is not available (${why}); run scripts/setup.sh where libdnnl-dev installs, or use the wasm backend`);
    }
  }
  return loaded;
}
var geometryOf = (c) => [
  c.strideHeight,
  c.strideWidth,
  c.dilationHeight,
  c.dilationWidth,
  c.padInfo.top,
  c.padInfo.left,
  c.padInfo.bottom,
  c.padInfo.right
];
function heap(b, t) {
  if (t.dtype !== "float32") throw new Error(`native backend: expected float32, got ${t.dtype}`);
  return b.typedArrayFromHeap(t);
}
var size = (s) => s.reduce((a, b) => a * b, 1);
var nhwc = (attrs) => (attrs.dataFormat ?? "NHWC") === "NHWC";
function withFallback(theirs, mine) {
  return (args) => mine({ ...args, attrs: args.attrs ?? {}, backend: args.backend }) ?? theirs.kernelFunc(args);
}
function kernels(addon, shipped2) {
  const conv2 = (b, x, filter, attrs) => {
    const c = backend_util2.computeConv2DInfo(
      x.shape,
      filter.shape,
      attrs.strides,
      attrs.dilations ?? 1,
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      "channelsLast"
    );
    const out = b.makeOutput(c.outShape, "float32");
    if (size(c.outShape) > 0) addon.conv2d(heap(b, x), x.shape, heap(b, filter), filter.shape, heap(b, out), c.outShape, geometryOf(c));
    return out;
  };
  const config = (kernelName, mine) => {
    const theirs = tf2.getKernel(kernelName, HOST);
    if (!theirs) throw new Error(`native backend: wasm has no ${kernelName} kernel to stand beside`);
    shipped2.set(kernelName, theirs);
    return { kernelName, backendName: HOST, kernelFunc: withFallback(theirs, mine) };
  };
  return [
    config("Conv2D", ({ inputs, attrs, backend: backend2 }) => nhwc(attrs) ? conv2(backend2, inputs.x, inputs.filter, attrs) : null),
    // tfjs-layers' Conv2D layers call the fused op: convolution, then bias and activation.
    config("FusedConv2D", ({ inputs, attrs, backend: backend2 }) => {
      const activation = attrs.activation ?? "linear";
      const filter = inputs.filter, bias = inputs.bias;
      const channels = filter.shape[3];
      if (!nhwc(attrs) || activation !== "linear" && activation !== "relu") return null;
      if (bias && size(bias.shape) !== channels && size(bias.shape) !== 1) return null;
      const out = conv2(backend2, inputs.x, filter, attrs);
      if (bias || activation === "relu") {
        const y = heap(backend2, out), bv = bias ? heap(backend2, bias) : null;
        const relu2 = activation === "relu";
        for (let i = 0; i < y.length; i++) {
          let v = bv ? y[i] + bv[bv.length === 1 ? 0 : i % channels] : y[i];
          if (relu2 && v < 0) v = 0;
          y[i] = v;
        }
      }
      return out;
    }),
    config("Conv2DBackpropInput", ({ inputs, attrs, backend: backend2 }) => {
      if (!nhwc(attrs)) return null;
      const dy = inputs.dy, filter = inputs.filter;
      const inputShape = attrs.inputShape;
      const c = backend_util2.computeConv2DInfo(
        inputShape,
        filter.shape,
        attrs.strides,
        1,
        attrs.pad,
        attrs.dimRoundingMode,
        false,
        "channelsLast"
      );
      const out = backend2.makeOutput(inputShape, "float32");
      if (size(inputShape) > 0) addon.conv2dBackpropInput(heap(backend2, dy), dy.shape, heap(backend2, filter), filter.shape, heap(backend2, out), inputShape, geometryOf(c));
      return out;
    }),
    config("Conv2DBackpropFilter", ({ inputs, attrs, backend: backend2 }) => {
      if (!nhwc(attrs)) return null;
      const x = inputs.x, dy = inputs.dy;
      const filterShape = attrs.filterShape;
      const c = backend_util2.computeConv2DInfo(
        x.shape,
        filterShape,
        attrs.strides,
        1,
        attrs.pad,
        attrs.dimRoundingMode,
        false,
        "channelsLast"
      );
      const out = backend2.makeOutput(filterShape, "float32");
      if (size(filterShape) > 0) addon.conv2dBackpropFilter(heap(backend2, x), x.shape, heap(backend2, dy), dy.shape, heap(backend2, out), filterShape, geometryOf(c));
      return out;
    }),
    // wasm's max-pool gradient is a slow general path; one pass over the windows here.
    config("MaxPoolGrad", ({ inputs, attrs, backend: backend2 }) => {
      const dy = inputs.dy, x = inputs.input;
      if (x.shape.length !== 4 || x.dtype !== "float32") return null;
      const c = backend_util2.computePool2DInfo(
        x.shape,
        attrs.filterSize,
        attrs.strides,
        1,
        attrs.pad,
        attrs.dimRoundingMode
      );
      if (c.dilationHeight !== 1 || c.dilationWidth !== 1) return null;
      const out = backend2.makeOutput(x.shape, "float32");
      addon.maxPoolGrad(
        heap(backend2, x),
        x.shape,
        heap(backend2, dy),
        dy.shape,
        heap(backend2, out),
        [c.filterHeight, c.filterWidth, c.strideHeight, c.strideWidth, c.padInfo.top, c.padInfo.left]
      );
      return out;
    }),
    // Sums and means over the leading axes (bias and batch-norm gradients, batch statistics):
    // wasm transposes first; a straight pass over the rows is several times faster.
    config("Sum", ({ inputs, attrs, backend: backend2 }) => reduceLeading(backend2, inputs.x, attrs, false)),
    config("Mean", ({ inputs, attrs, backend: backend2 }) => reduceLeading(backend2, inputs.x, attrs, true))
  ];
  function reduceLeading(b, x, attrs, mean) {
    if (x.dtype !== "float32" || x.shape.length === 0) return null;
    const rank = x.shape.length;
    const axes = [...new Set(tf2.util.parseAxisParam(attrs.axis, x.shape))].sort((a, b2) => a - b2);
    if (axes.length < rank - 1 || axes.some((a, i) => a !== i)) return null;
    const cols = axes.length === rank ? 1 : x.shape[rank - 1];
    const rows = size(x.shape) / cols;
    const outShape = attrs.keepDims ? x.shape.map((d, i) => axes.includes(i) ? 1 : d) : axes.length === rank ? [] : [cols];
    const out = b.makeOutput(outShape, "float32");
    addon.sumRows(heap(b, x), rows, cols, heap(b, out), mean ? rows > 0 ? 1 / rows : NaN : 1);
    return out;
  }
}
var shipped = /* @__PURE__ */ new Map();
var ours2;
function useNativeConvolutions(on) {
  if (ours2 === void 0 && !on) return;
  if (ours2 === void 0) {
    const addon = nativeAddon();
    if (addon instanceof Error) throw addon;
    ours2 = kernels(addon, shipped);
  }
  for (const k of ours2) {
    tf2.unregisterKernel(k.kernelName, HOST);
    tf2.registerKernel(on ? k : shipped.get(k.kernelName));
  }
}

// src/model/backend.ts
var ready2;
var readyFor;
async function initBackend(preferred = "auto") {
  if (ready2 === void 0 || readyFor !== preferred && preferred !== "auto") {
    readyFor = preferred;
    ready2 = choose(preferred);
    ready2.catch(() => {
      ready2 = void 0;
      readyFor = void 0;
    });
  }
  const name = await ready2;
  const tfName = name === NATIVE ? "wasm" : name;
  if (tf3.getBackend() !== tfName) await activate(tfName);
  return name;
}
async function choose(preferred) {
  if (preferred === "tensorflow" || preferred === "auto") {
    if (await tryTfjsNode()) return activate("tensorflow");
    if (preferred === "tensorflow") {
      throw new Error('backend "tensorflow" requested but @tensorflow/tfjs-node cannot be imported (it is optional: install it where libtensorflow can be downloaded)');
    }
  }
  if (preferred === "cpu") return activate("cpu");
  useNativeConvolutions(false);
  if (preferred === "native" || preferred === "auto" && !(nativeAddon() instanceof Error)) {
    await activateWasm();
    useNativeConvolutions(true);
    return NATIVE;
  }
  return activateWasm();
}
async function tryTfjsNode() {
  const name = "@tensorflow/tfjs-node";
  try {
    await import(name);
    return tf3.findBackendFactory("tensorflow") !== null;
  } catch {
    return false;
  }
}
var wasmPathsSet = false;
async function activateWasm() {
  if (!wasmPathsSet) {
    const require2 = createRequire2(import.meta.url);
    const pkg = require2.resolve("@tensorflow/tfjs-backend-wasm/package.json");
    setWasmPaths(join(dirname(pkg), "dist") + "/");
    wasmPathsSet = true;
  }
  tf3.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
  registerWasmTrainingKernels();
  return activate("wasm");
}
async function activate(name) {
  const ok = await tf3.setBackend(name);
  if (!ok) throw new Error(`backend "${name}" failed to initialise`);
  await tf3.ready();
  return tf3.getBackend();
}

// src/model/gradient.ts
import * as tf5 from "@tensorflow/tfjs-core";

// src/model/flat.ts
import { createHash } from "node:crypto";
import * as tf4 from "@tensorflow/tfjs-core";
var bound = /* @__PURE__ */ new WeakMap();
function weightsInOrder(model2) {
  const all = [];
  for (const layer of model2.layers) {
    for (const w of layer.weights) {
      all.push({ name: w.originalName, variable: w.read(), shape: [...w.shape], trainable: w.trainable });
    }
  }
  return [...all.filter((w) => w.trainable), ...all.filter((w) => !w.trainable)];
}
function bind(model2) {
  const cached = bound.get(model2);
  if (cached !== void 0) return cached;
  const weights = weightsInOrder(model2);
  const entries = [];
  let offset = 0;
  let trainableSize = 0;
  const seen = /* @__PURE__ */ new Set();
  for (const w of weights) {
    if (seen.has(w.name)) throw new Error(`duplicate weight name "${w.name}" in model "${model2.name}"`);
    seen.add(w.name);
    const size2 = w.shape.reduce((a, b2) => a * b2, 1);
    entries.push({ name: w.name, shape: w.shape, offset, size: size2, trainable: w.trainable });
    offset += size2;
    if (w.trainable) trainableSize = offset;
  }
  const canonical = JSON.stringify({ model: model2.name, entries: entries.map((e) => [e.name, e.shape, e.trainable]) });
  const hash = createHash("sha256").update(canonical).digest("hex").slice(0, 16);
  const b = { layout: { model: model2.name, entries, size: offset, trainableSize, hash }, variables: weights.map((w) => w.variable) };
  bound.set(model2, b);
  return b;
}
function getLayout(model2) {
  return bind(model2).layout;
}
function layoutVariables(model2) {
  return bind(model2).variables;
}
function setFlatParams(model2, flat) {
  const { layout, variables } = bind(model2);
  if (!(flat instanceof Float32Array)) throw new Error("setFlatParams: expected a Float32Array");
  if (flat.length !== layout.size) {
    throw new Error(`setFlatParams: model "${layout.model}" (layout ${layout.hash}) has ${layout.size} parameters, got a vector of ${flat.length}`);
  }
  tf4.tidy(() => {
    layout.entries.forEach((e, i) => {
      variables[i].assign(tf4.tensor(flat.subarray(e.offset, e.offset + e.size), e.shape, "float32"));
    });
  });
}
function flatGradient(layout, byIndex, into, scale = 1) {
  const out = into ?? new Float32Array(layout.size);
  if (out.length !== layout.size) throw new Error(`flatGradient: expected ${layout.size} elements, got ${out.length}`);
  layout.entries.forEach((e, i) => {
    const t = byIndex[i];
    if (t === void 0) return;
    if (t.size !== e.size) throw new Error(`flatGradient: "${e.name}" has ${e.size} elements, its gradient ${t.size}`);
    const d = t.dataSync();
    if (into === void 0 && scale === 1) {
      out.set(d, e.offset);
    } else {
      for (let j = 0; j < e.size; j++) out[e.offset + j] += scale * d[j];
    }
  });
  return out;
}

// src/model/forward.ts
function forward(model2, x, training) {
  const values = /* @__PURE__ */ new Map();
  values.set(model2.inputs[0].id, x);
  for (const layer of model2.layers) {
    if (layer.getClassName() === "InputLayer") continue;
    const node = layer.inboundNodes[0];
    if (node === void 0 || layer.inboundNodes.length !== 1) {
      throw new Error(`layer "${layer.name}" must be used exactly once in model "${model2.name}"`);
    }
    const ins = node.inputTensors.map((s) => {
      const v = values.get(s.id);
      if (v === void 0) throw new Error(`layer "${layer.name}": input "${s.name}" not computed yet`);
      return v;
    });
    const out = layer.apply(ins.length === 1 ? ins[0] : ins, { training });
    values.set(node.outputTensors[0].id, out);
  }
  const y = values.get(model2.outputs[0].id);
  if (y === void 0) throw new Error(`model "${model2.name}": output not computed`);
  return y;
}

// src/model/zoo.ts
import * as tfl from "@tensorflow/tfjs-layers";

// src/data/random.ts
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = a + 1831565813 >>> 0;
    let t = a;
    t = Math.imul(t ^ t >>> 15, t | 1);
    t ^= t + Math.imul(t ^ t >>> 7, t | 61);
    return ((t ^ t >>> 14) >>> 0) / 4294967296;
  };
}

// src/model/init.ts
function entrySeed(seed, index) {
  return (Math.imul(seed >>> 0, 2654435761) ^ Math.imul(index + 1, 2246822507)) >>> 0;
}
function fill(out, e, value) {
  out.fill(value, e.offset, e.offset + e.size);
}
function uniform(out, e, limit, seed) {
  const rnd = mulberry32(seed);
  for (let i = 0; i < e.size; i++) out[e.offset + i] = (2 * rnd() - 1) * limit;
}
function initialParams(layout, seed) {
  const out = new Float32Array(layout.size);
  const kernels2 = layout.entries.filter((e) => e.name.endsWith("/kernel"));
  const classifier = kernels2[kernels2.length - 1];
  layout.entries.forEach((e, i) => {
    const weight = e.name.slice(e.name.lastIndexOf("/") + 1);
    switch (weight) {
      case "kernel": {
        const fanOut = e.shape[e.shape.length - 1];
        const fanIn = e.size / fanOut;
        const limit = e === classifier ? Math.sqrt(6 / (fanIn + fanOut)) : Math.sqrt(6 / fanIn);
        uniform(out, e, limit, entrySeed(seed, i));
        break;
      }
      case "gamma":
      case "moving_variance":
        fill(out, e, 1);
        break;
      case "bias":
      case "beta":
      case "moving_mean":
        fill(out, e, 0);
        break;
      default:
        throw new Error(`no initializer for weight "${e.name}"`);
    }
  });
  return out;
}

// src/model/zoo.ts
var MODEL_NAMES = ["cnn", "vgg11", "resnet18", "densenet121"];
var IMAGE_SIZE = 28;
var NUM_CLASSES = 10;
function scaled(channels, width) {
  return Math.max(1, Math.round(channels * width));
}
var zeros2 = "zeros";
function conv(x, name, filters, kernel, stride = 1, opts = {}) {
  return tfl.layers.conv2d({
    name,
    filters,
    kernelSize: kernel,
    strides: stride,
    padding: opts.padding ?? "same",
    useBias: opts.bias ?? false,
    activation: opts.relu === true ? "relu" : "linear",
    // Real values come from init.ts; zeros keep the build fast.
    kernelInitializer: zeros2,
    biasInitializer: zeros2
  }).apply(x);
}
function bn(x, name) {
  return tfl.layers.batchNormalization({ name, axis: -1, momentum: 0, epsilon: 1e-5 }).apply(x);
}
function relu(x, name) {
  return tfl.layers.activation({ name, activation: "relu" }).apply(x);
}
function dense(x, name, units, relu2) {
  return tfl.layers.dense({ name, units, activation: relu2 ? "relu" : "linear", kernelInitializer: zeros2, biasInitializer: zeros2 }).apply(x);
}
function input2() {
  return tfl.input({ shape: [IMAGE_SIZE, IMAGE_SIZE, 1], name: "image" });
}
function cnn(width) {
  const x = input2();
  let h = conv(x, "conv1", scaled(32, width), 3, 1, { bias: true, relu: true, padding: "valid" });
  h = tfl.layers.maxPooling2d({ name: "pool1", poolSize: 2 }).apply(h);
  h = conv(h, "conv2", scaled(64, width), 3, 1, { bias: true, relu: true, padding: "valid" });
  h = tfl.layers.maxPooling2d({ name: "pool2", poolSize: 2 }).apply(h);
  h = tfl.layers.flatten({ name: "flatten" }).apply(h);
  h = dense(h, "fc1", scaled(128, width), true);
  const y = dense(h, "logits", NUM_CLASSES, false);
  return tfl.model({ name: "cnn", inputs: x, outputs: y });
}
function vgg11(width) {
  const x = input2();
  const cfg = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512];
  let h = x;
  let c = 0;
  let p = 0;
  for (const v of cfg) {
    if (v === "M") h = tfl.layers.maxPooling2d({ name: `pool${++p}`, poolSize: 2 }).apply(h);
    else h = conv(h, `conv${++c}`, scaled(v, width), 3, 1, { bias: true, relu: true });
  }
  h = tfl.layers.flatten({ name: "flatten" }).apply(h);
  h = dense(h, "fc1", scaled(512, width), true);
  const y = dense(h, "logits", NUM_CLASSES, false);
  return tfl.model({ name: "vgg11", inputs: x, outputs: y });
}
function basicBlock(x, name, inC, outC, stride) {
  let h = conv(x, `${name}_conv1`, outC, 3, stride);
  h = relu(bn(h, `${name}_bn1`), `${name}_relu1`);
  h = bn(conv(h, `${name}_conv2`, outC, 3, 1), `${name}_bn2`);
  let shortcut = x;
  if (stride !== 1 || inC !== outC) {
    shortcut = bn(conv(x, `${name}_down_conv`, outC, 1, stride), `${name}_down_bn`);
  }
  return relu(tfl.layers.add({ name: `${name}_add` }).apply([h, shortcut]), `${name}_out`);
}
function resnet18(width) {
  const x = input2();
  let c = scaled(64, width);
  let h = relu(bn(conv(x, "stem_conv", c, 3), "stem_bn"), "stem_relu");
  const stages = [64, 128, 256, 512];
  stages.forEach((channels, s) => {
    const outC = scaled(channels, width);
    for (let b = 0; b < 2; b++) {
      h = basicBlock(h, `l${s + 1}_b${b}`, c, outC, b === 0 && s > 0 ? 2 : 1);
      c = outC;
    }
  });
  h = tfl.layers.globalAveragePooling2d({ name: "gap" }).apply(h);
  const y = dense(h, "logits", NUM_CLASSES, false);
  return tfl.model({ name: "resnet18", inputs: x, outputs: y });
}
function densenet121(width) {
  const growth = scaled(32, width);
  const x = input2();
  let c = scaled(64, width);
  let h = conv(x, "stem_conv", c, 3);
  const blocks = [6, 12, 24, 16];
  blocks.forEach((layers2, bi) => {
    for (let l = 0; l < layers2; l++) {
      const n = `d${bi + 1}_l${l + 1}`;
      let y2 = relu(bn(h, `${n}_bn1`), `${n}_relu1`);
      y2 = conv(y2, `${n}_conv1`, 4 * growth, 1);
      y2 = relu(bn(y2, `${n}_bn2`), `${n}_relu2`);
      y2 = conv(y2, `${n}_conv2`, growth, 3);
      h = tfl.layers.concatenate({ name: `${n}_cat`, axis: -1 }).apply([h, y2]);
      c += growth;
    }
    if (bi < blocks.length - 1) {
      const n = `t${bi + 1}`;
      c = Math.max(1, Math.floor(c / 2));
      h = relu(bn(h, `${n}_bn`), `${n}_relu`);
      h = conv(h, `${n}_conv`, c, 1);
      h = tfl.layers.averagePooling2d({ name: `${n}_pool`, poolSize: 2 }).apply(h);
    }
  });
  h = relu(bn(h, "final_bn"), "final_relu");
  h = tfl.layers.globalAveragePooling2d({ name: "gap" }).apply(h);
  const y = dense(h, "logits", NUM_CLASSES, false);
  return tfl.model({ name: "densenet121", inputs: x, outputs: y });
}
var builders = { cnn, vgg11, resnet18, densenet121 };
function isModelName(name) {
  return MODEL_NAMES.includes(name);
}
function buildModel(name, width = 1, seed = 0) {
  if (!isModelName(name)) {
    throw new Error(`unknown model "${name}": expected one of ${MODEL_NAMES.join(", ")}`);
  }
  if (!(Number.isFinite(width) && width > 0)) throw new Error(`width must be a positive number, got ${width}`);
  const model2 = builders[name](width);
  setFlatParams(model2, initialParams(getLayout(model2), seed));
  return model2;
}

// src/model/gradient.ts
var PIXELS = IMAGE_SIZE * IMAGE_SIZE;
function checkBatch(images, labels) {
  const n = labels.length;
  if (n === 0) throw new Error("empty batch: no labels");
  if (images.length !== n * PIXELS) {
    throw new Error(`images have ${images.length} bytes, expected ${n} x ${PIXELS} = ${n * PIXELS} for ${n} labels`);
  }
  for (let i = 0; i < n; i++) {
    if (labels[i] >= NUM_CLASSES) throw new Error(`label ${labels[i]} at index ${i} is not a class (0..${NUM_CLASSES - 1})`);
  }
  return n;
}
function imageTensor(images, start, count) {
  const px = new Float32Array(count * PIXELS);
  const src = images.subarray(start * PIXELS, (start + count) * PIXELS);
  for (let i = 0; i < px.length; i++) px[i] = src[i] / 255;
  return tf5.tensor4d(px, [count, IMAGE_SIZE, IMAGE_SIZE, 1]);
}
function labelTensor(labels, start, count) {
  return tf5.tensor1d(Int32Array.from(labels.subarray(start, start + count)), "int32");
}
function countCorrect(logits, labels) {
  return tf5.sum(tf5.cast(tf5.equal(tf5.argMax(logits, 1), labels), "int32"));
}
function computeGradient(model2, images, labels, opts = {}) {
  const n = checkBatch(images, labels);
  const layout = getLayout(model2);
  const vars = layoutVariables(model2);
  const nTrainable = layout.entries.filter((e) => e.trainable).length;
  const trainable = vars.slice(0, nTrainable);
  const stats = layout.entries.slice(nTrainable);
  const savedStats = stats.map((_, i) => vars[nTrainable + i].dataSync().slice());
  const mb = opts.microBatch !== void 0 && opts.microBatch > 0 ? Math.min(opts.microBatch, n) : n;
  const gradient = new Float32Array(layout.size);
  let lossSum = 0;
  let correct = 0;
  try {
    for (let start = 0; start < n; start += mb) {
      const m = Math.min(mb, n - start);
      const weight = m / n;
      tf5.tidy(() => {
        const x = imageTensor(images, start, m);
        const y = labelTensor(labels, start, m);
        const oneHot2 = tf5.oneHot(y, NUM_CLASSES);
        let hits;
        const { value, grads } = tf5.variableGrads(() => {
          const logits = forward(model2, x, true);
          hits = tf5.keep(countCorrect(logits, y));
          return tf5.losses.softmaxCrossEntropy(oneHot2, logits);
        }, trainable);
        lossSum += value.dataSync()[0] * m;
        correct += hits.dataSync()[0];
        hits.dispose();
        flatGradient(layout, trainable.map((v) => grads[v.name]), gradient, weight);
        stats.forEach((e, i) => {
          const d = vars[nTrainable + i].dataSync();
          for (let j = 0; j < e.size; j++) gradient[e.offset + j] += weight * d[j];
        });
      });
    }
  } finally {
    tf5.tidy(() => stats.forEach((e, i) => vars[nTrainable + i].assign(tf5.tensor(savedStats[i], e.shape, "float32"))));
  }
  return { gradient, loss: lossSum / n, correct, samples: n };
}

// src/model/profile.ts
var arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
var spent = /* @__PURE__ */ new Map();
function instrument() {
  for (const k of tf6.getKernelsForBackend("wasm")) {
    const inner = k.kernelFunc;
    const timed = {
      ...k,
      kernelFunc: (args) => {
        const t = performance.now();
        const out = inner(args);
        const s = spent.get(k.kernelName) ?? { ms: 0, calls: 0 };
        s.ms += performance.now() - t;
        s.calls++;
        spent.set(k.kernelName, s);
        return out;
      }
    };
    tf6.unregisterKernel(k.kernelName, "wasm");
    tf6.registerKernel(timed);
  }
}
async function main() {
  const models = arg("models", "vgg11,resnet18").split(",");
  const batch = Number(arg("batch", "64"));
  const runs = Number(arg("runs", "2"));
  await initBackend("wasm");
  if (!process.argv.includes("--wasm")) useNativeConvolutions(true);
  instrument();
  const images = new Uint8Array(batch * 784).map((_, i) => i * 2654435761 >>> 24);
  const labels = new Uint8Array(batch).map((_, i) => i % 10);
  for (const name of models) {
    const model2 = buildModel(name, 1, 0);
    computeGradient(model2, images, labels);
    spent.clear();
    const t = performance.now();
    for (let r = 0; r < runs; r++) computeGradient(model2, images, labels);
    const total = (performance.now() - t) / runs;
    const rows = [...spent].map(([kernel, s]) => ({ kernel, ms: s.ms / runs, calls: s.calls / runs })).sort((a, b) => b.ms - a.ms);
    const inKernels = rows.reduce((a, r) => a + r.ms, 0);
    console.log(`
${name}, batch ${batch}: ${total.toFixed(0)} ms per gradient, ${inKernels.toFixed(0)} ms in kernels`);
    console.log("| kernel | ms | share | calls |\n| --- | ---: | ---: | ---: |");
    for (const r of rows.slice(0, 20)) console.log(`| ${r.kernel} | ${r.ms.toFixed(1)} | ${(100 * r.ms / total).toFixed(1)}% | ${r.calls} |`);
    model2.dispose();
  }
}
await main();
