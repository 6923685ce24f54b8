/**
 * Training kernels for the wasm backend, composed from kernels wasm has.
 *
 * tfjs-backend-wasm 4.22 as shipped cannot train a conv net: `Conv2DBackpropFilter` is not
 * registered at all, and its `Conv2DBackpropInput` is slow. Both are expressed here as one
 * forward `Conv2D` (XNNPACK, SIMD) plus cheap layout ops (transpose, pad, slice, reshape).
 * NHWC only, any strides, 'same' / 'valid' / explicit padding, dilation 1 (the only case
 * tfjs' conv2d gradient supports).
 *
 * Forward, per spatial axis:  y[o] = sum_k x[o*s - p0 + k] * w[k]   (x is 0 outside [0, H)).
 *
 * dW[k] = sum_o x[k - p0 + o*s] * dy[o]: a conv of x (batch moved to the channel axis) with
 *   dy as the filter (batch as its input channels), dilation s, stride 1, padding p0 before.
 * dX[i] = sum_k dy[(i + p0 - k) / s] * w[k]: a stride-1 conv of dy with zeros inserted
 *   between its rows/columns (s - 1 of them), padded by fh-1-p0 before, with the filter
 *   flipped spatially and its in/out channels swapped.
 *
 * Measured (`npx tsx src/model/measure.ts`, 2-core x86, Node 20, wasm SIMD, one thread),
 * Conv2DBackpropInput, wasm's shipped kernel vs ours:
 *   ResNet stage 1, dy 64x28x28x64, 3x3/64, stride 1:   1454-1571 ms vs 154-183 ms (~9x)
 *   ResNet stage 2 down, dy 64x14x14x128, 3x3, stride 2:   748-766 ms vs 325-379 ms (~2x;
 *     3/4 of the dilated dy is zeros: a polyphase split would win that back)
 *   cnn conv2, dy 64x11x11x64, 3x3/32, valid:              119-140 ms vs 17-20 ms (~7x)
 */
import * as tf from '@tensorflow/tfjs-core';
import { backend_util } from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';

const BACKEND = 'wasm';

type Pad = 'same' | 'valid' | number | backend_util.ExplicitPadding;

/** Tensors in, tensor out: kernels may receive bare TensorInfos, so wrap them first. */
function asTensor(info: TensorInfo | undefined): tf.Tensor {
  if (info === undefined) throw new Error('wasm training kernel: missing input');
  if (info instanceof tf.Tensor) return info;
  return tf.engine().makeTensorFromTensorInfo(info);
}

function asTensor4D(info: TensorInfo | undefined): tf.Tensor4D {
  return asTensor(info) as tf.Tensor4D;
}

/** Pads (positive) or crops (negative) the two spatial axes of an NHWC tensor. */
function padOrCrop(x: tf.Tensor4D, top: number, bottom: number, left: number, right: number): tf.Tensor4D {
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

/** Inserts s-1 zeros between rows and columns: [n,h,w,c] -> [n,(h-1)*sh+1,(w-1)*sw+1,c]. */
function dilateSpatial(x: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  let y = x;
  if (sh > 1) {
    // Each row is followed by sh-1 zero rows: pad a unit axis, then fold it back.
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

function convInfo(xShape: number[], filterShape: number[], strides: [number, number] | number, pad: Pad, dimRoundingMode: unknown, dataFormat: unknown): backend_util.Conv2DInfo {
  if (dataFormat !== undefined && dataFormat !== 'NHWC') {
    throw new Error(`wasm training kernels support NHWC only, got dataFormat "${String(dataFormat)}"`);
  }
  return backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    strides,
    1,
    pad,
    dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
    false,
    'channelsLast',
  );
}

/** dW = conv(x^T, dy^T) with dilation = stride; see the file comment. */
export function conv2dBackpropFilterDilated(x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: [number, number, number, number], strides: [number, number] | number, pad: Pad, dimRoundingMode?: unknown, dataFormat?: unknown): tf.Tensor4D {
  return tf.tidy(() => {
    const info = convInfo(x.shape, filterShape, strides, pad, dimRoundingMode, dataFormat);
    const xp = paddedToReadExtent(x, info);
    const xt = tf.transpose(xp, [3, 1, 2, 0]); // [inC, H', W', n]
    const f = tf.transpose(dy, [1, 2, 0, 3]); // [oh, ow, n, outC]
    const out = tf.conv2d(xt, f, 1, 'valid', 'NHWC', [info.strideHeight, info.strideWidth]); // [inC, fh, fw, outC]
    return tf.transpose(out, [1, 2, 0, 3]);
  });
}

/** x padded (or cropped) to exactly the rows/columns the forward conv reads. */
function paddedToReadExtent(x: tf.Tensor4D, info: backend_util.Conv2DInfo): tf.Tensor4D {
  const { top, left } = info.padInfo;
  const bottom = (info.outHeight - 1) * info.strideHeight + info.filterHeight - top - info.inHeight;
  const right = (info.outWidth - 1) * info.strideWidth + info.filterWidth - left - info.inWidth;
  return padOrCrop(x, top, bottom, left, right);
}

/**
 * dW dispatch. A 1x1 stride-1 conv's dW is one matrix product, dW^T = dy^T . x (2.5x faster
 * than the dilated conv at 64x28x28x128). For larger filters the dilated conv wins: an im2col
 * + matMul variant measured 2-7x slower here (XNNPACK repacks the big operand every call).
 */
export function conv2dBackpropFilter(x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: [number, number, number, number], strides: [number, number] | number, pad: Pad, dimRoundingMode?: unknown, dataFormat?: unknown): tf.Tensor4D {
  const info = convInfo(x.shape, filterShape, strides, pad, dimRoundingMode, dataFormat);
  const [fh, fw, inC, outC] = filterShape;
  if (fh !== 1 || fw !== 1 || info.strideHeight !== 1 || info.strideWidth !== 1 || info.outHeight !== info.inHeight || info.outWidth !== info.inWidth) {
    return conv2dBackpropFilterDilated(x, dy, filterShape, strides, pad, dimRoundingMode, dataFormat);
  }
  return tf.tidy(() => {
    const rows = x.shape[0] * info.outHeight * info.outWidth;
    const xf = tf.reshape(x, [rows, inC]);
    const dyf = tf.reshape(dy, [rows, outC]);
    return tf.reshape(tf.transpose(tf.matMul(dyf, xf, true, false)), [1, 1, inC, outC]);
  });
}

/** dX = conv(zero-dilated dy, flipped w^T); see the file comment. */
export function conv2dBackpropInput(dy: tf.Tensor4D, filter: tf.Tensor4D, inputShape: [number, number, number, number], strides: [number, number] | number, pad: Pad, dimRoundingMode?: unknown, dataFormat?: unknown): tf.Tensor4D {
  return tf.tidy(() => {
    const info = convInfo(inputShape, filter.shape, strides, pad, dimRoundingMode, dataFormat);
    const [fh, fw] = [info.filterHeight, info.filterWidth];
    const [sh, sw] = [info.strideHeight, info.strideWidth];
    const { top, left } = info.padInfo;
    const d = dilateSpatial(dy, sh, sw);
    const pt = fh - 1 - top;
    const pl = fw - 1 - left;
    const pb = info.inHeight - d.shape[1] - pt + fh - 1;
    const pr = info.inWidth - d.shape[2] - pl + fw - 1;
    const dp = padOrCrop(d, pt, pb, pl, pr);
    // [fh, fw, inC, outC] -> flipped, [fh, fw, outC, inC]
    const w = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]);
    return tf.conv2d(dp, w, 1, 'valid');
  });
}

const backpropFilterKernel: KernelFunc = ({ inputs, attrs }) => {
  const { x, dy } = inputs as NamedTensorInfoMap;
  const a = attrs as NamedAttrMap;
  return conv2dBackpropFilter(
    asTensor4D(x),
    asTensor4D(dy),
    a['filterShape'] as [number, number, number, number],
    a['strides'] as [number, number],
    a['pad'] as Pad,
    a['dimRoundingMode'],
    a['dataFormat'],
  );
};

const backpropInputKernel: KernelFunc = ({ inputs, attrs }) => {
  const { dy, filter } = inputs as NamedTensorInfoMap;
  const a = attrs as NamedAttrMap;
  return conv2dBackpropInput(
    asTensor4D(dy),
    asTensor4D(filter),
    a['inputShape'] as [number, number, number, number],
    a['strides'] as [number, number],
    a['pad'] as Pad,
    a['dimRoundingMode'],
    a['dataFormat'],
  );
};

/** wasm's own kernels that ours replace or wrap. */
const shippedKernels = new Map<string, KernelConfig>();

/**
 * wasm's BatchMatMul is fast without transposes (XNNPACK) and ~10x slower with them, which
 * is exactly how every Dense layer's gradient calls it (x^T dy, dy W^T). Transposing the
 * operand explicitly first and running the plain product is far cheaper.
 */
const batchMatMulKernel: KernelFunc = (args) => {
  const base = shippedKernels.get(tf.BatchMatMul);
  if (base === undefined) throw new Error('wasm BatchMatMul kernel not found');
  const a = args.attrs as NamedAttrMap;
  if (a['transposeA'] !== true && a['transposeB'] !== true) return base.kernelFunc(args);
  const { a: ai, b: bi } = args.inputs as NamedTensorInfoMap;
  const swapLast = (t: tf.Tensor): tf.Tensor => {
    const perm = t.shape.map((_, i) => i);
    perm[t.rank - 2] = t.rank - 1;
    perm[t.rank - 1] = t.rank - 2;
    return tf.transpose(t, perm);
  };
  const at = a['transposeA'] === true ? swapLast(asTensor(ai)) : asTensor(ai);
  const bt = a['transposeB'] === true ? swapLast(asTensor(bi)) : asTensor(bi);
  try {
    return base.kernelFunc({ ...args, inputs: { a: at, b: bt }, attrs: { ...a, transposeA: false, transposeB: false } });
  } finally {
    if (at !== ai) at.dispose();
    if (bt !== bi) bt.dispose();
  }
};

/**
 * BatchNorm's gradient broadcasts per-channel vectors with Tile ([1,1,1,C] -> [n,h,w,C]),
 * which wasm runs element by element: DenseNet-121 at width 0.25, batch 16 took 5.8 s per
 * gradient with it and 1.4 s without. When every tiled axis
 * has size 1 this is a broadcast: add to zeros instead (Fill + broadcasting Add).
 */
const tileKernel: KernelFunc = (args) => {
  const base = shippedKernels.get(tf.Tile);
  if (base === undefined) throw new Error('wasm Tile kernel not found');
  const { x } = args.inputs as NamedTensorInfoMap;
  const reps = (args.attrs as NamedAttrMap)['reps'] as number[];
  if (x === undefined || x.dtype !== 'float32' || !x.shape.every((d, i) => d === 1 || reps[i] === 1)) return base.kernelFunc(args);
  return tf.tidy(() => tf.add(asTensor(x), tf.zeros(x.shape.map((d, i) => d * reps[i]!))));
};

/**
 * wasm's Identity and Cast copy the data even when nothing changes. tfjs-core calls them on
 * every BatchNorm (moments casts float32 to float32; layers clone), and the tape keeps the
 * copies until backprop ends: DenseNet-121 held 2.5 GB of tensors at micro-batch 8. Share
 * the buffer instead (reference-counted, as Reshape does; no wasm kernel writes in place).
 */
interface RefCountingBackend {
  incRef(dataId: unknown): void;
}
const shareData = (x: TensorInfo, backend: unknown): TensorInfo => {
  (backend as RefCountingBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};
const identityKernel: KernelFunc = (args) => {
  const { x } = args.inputs as NamedTensorInfoMap;
  const base = shippedKernels.get(tf.Identity);
  if (x === undefined || base === undefined) throw new Error('wasm Identity kernel not found');
  return x.dtype === 'string' ? base.kernelFunc(args) : shareData(x, args.backend);
};
const castKernel: KernelFunc = (args) => {
  const { x } = args.inputs as NamedTensorInfoMap;
  const base = shippedKernels.get(tf.Cast);
  if (x === undefined || base === undefined) throw new Error('wasm Cast kernel not found');
  return x.dtype === (args.attrs as NamedAttrMap)['dtype'] && x.dtype !== 'string' ? shareData(x, args.backend) : base.kernelFunc(args);
};

const ours: KernelConfig[] = [
  { kernelName: tf.Identity, backendName: BACKEND, kernelFunc: identityKernel },
  { kernelName: tf.Cast, backendName: BACKEND, kernelFunc: castKernel },
  { kernelName: tf.Tile, backendName: BACKEND, kernelFunc: tileKernel },
  { kernelName: tf.Conv2DBackpropFilter, backendName: BACKEND, kernelFunc: backpropFilterKernel },
  { kernelName: tf.Conv2DBackpropInput, backendName: BACKEND, kernelFunc: backpropInputKernel },
  { kernelName: tf.BatchMatMul, backendName: BACKEND, kernelFunc: batchMatMulKernel },
];

let registered = false;

/** Registers our kernels for 'wasm' (replacing wasm's own where it has one). Idempotent. */
export function registerWasmTrainingKernels(): void {
  if (registered) return;
  for (const k of ours) {
    const existing = tf.getKernel(k.kernelName, BACKEND);
    if (existing !== undefined) {
      shippedKernels.set(k.kernelName, existing);
      tf.unregisterKernel(k.kernelName, BACKEND);
    }
    // A wrapper needs the shipped kernel's wasm setup, run when the backend initialises.
    const wraps = k.kernelName !== tf.Conv2DBackpropFilter && k.kernelName !== tf.Conv2DBackpropInput;
    tf.registerKernel(wraps && existing?.setupFunc !== undefined ? { ...k, setupFunc: existing.setupFunc } : k);
  }
  registered = true;
}

/**
 * Swaps wasm's shipped Conv2DBackpropInput back in (true) or ours (false): for the speed
 * comparison in measure.ts only.
 */
export function useShippedBackpropInput(shipped: boolean): void {
  const theirs = shippedKernels.get(tf.Conv2DBackpropInput);
  if (!registered || theirs === undefined) throw new Error('wasm training kernels are not registered');
  if (shipped && tf.getBackend() !== BACKEND) throw new Error('useShippedBackpropInput: the active backend is not wasm');
  // Ours replaced it before the backend initialised, so its wasm binding was never set up.
  if (shipped) theirs.setupFunc?.(tf.backend());
  tf.unregisterKernel(tf.Conv2DBackpropInput, BACKEND);
  tf.registerKernel(shipped ? theirs : ours.find((k) => k.kernelName === tf.Conv2DBackpropInput)!);
}
