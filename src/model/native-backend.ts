/**
 * The `native` backend: the wasm backend (XNNPACK, SIMD) with the kernels that dominate
 * training time run by a Node-API addon (native/addon, built by scripts/setup.sh when Debian's
 * libdnnl-dev is there): the convolutions and the Dense layers' matrix products by oneDNN;
 * batch norm in training (with its ReLU), the pooling gradients, concat and split, and
 * leading-axis sums in C++ loops. They read and write the tensors where wasm keeps them, on
 * the wasm heap, in TensorFlow.js's layouts (NHWC activations, HWIO filters): no copy and no
 * reorder between calls. Which kernels: the table of `src/model/profile.ts`.
 *
 * Why over wasm and not over the cpu backend: with oneDNN's convolutions over cpu, a cnn
 * gradient took 640 ms against 69 ms on wasm, every other kernel being the cpu backend's
 * JavaScript (`npx tsx src/model/measure.ts --native` at the commit that tried it).
 *
 * Single-threaded by default (one function per core); `PEERLESS_NATIVE_THREADS` raises it for a
 * process that has the machine to itself.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { backend_util } from '@tensorflow/tfjs-core';
import { ADDON_ENV, addonInCache, addonInPackage } from './native-addon-build.ts';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { BATCH_NORM_TRAINING, BATCH_NORM_TRAINING_GRAD, registerBatchNormTrainingGradient } from './batch-norm.js';

/** The name Peerless gives this backend; TensorFlow.js's own backend underneath is wasm. */
export const NATIVE = 'native';
const HOST = 'wasm';

type Shape = number[];
/** [strideH, strideW, dilationH, dilationW, padTop, padLeft, padBottom, padRight] */
type Geometry = number[];

export interface NativeAddon {
  /** bias: one per output channel (or null); relu: y = max(0, conv + bias). Both applied by oneDNN as it writes y. */
  conv2d(x: Float32Array, xShape: Shape, w: Float32Array, wShape: Shape, y: Float32Array, yShape: Shape, g: Geometry, bias?: Float32Array | null, relu?: boolean): void;
  conv2dBackpropInput(dy: Float32Array, dyShape: Shape, w: Float32Array, wShape: Shape, dx: Float32Array, dxShape: Shape, g: Geometry): void;
  conv2dBackpropFilter(x: Float32Array, xShape: Shape, dy: Float32Array, dyShape: Shape, dw: Float32Array, wShape: Shape, g: Geometry): void;
  /** The forward's implementation for these shapes: "matmul" (a 1x1 map), or oneDNN's name ("jit_wino_4x3:avx512_core", ...). */
  conv2dKernel(xShape: Shape, wShape: Shape, yShape: Shape, g: Geometry): string;
  sumRows(x: Float32Array, rows: number, cols: number, out: Float32Array, scale: number): void;
  /** pool = [filterH, filterW, strideH, strideW, padTop, padLeft] */
  maxPoolGrad(x: Float32Array, xShape: Shape, dy: Float32Array, dyShape: Shape, dx: Float32Array, pool: number[]): void;
  avgPoolGrad(dy: Float32Array, dyShape: Shape, dx: Float32Array, dxShape: Shape, pool: number[]): void;
  /** out row r = each input's row r in turn; input i's rows are inners[i] long. */
  concatRows(inputs: Float32Array[], inners: number[], outer: number, out: Float32Array): void;
  splitRows(x: Float32Array, outer: number, inners: number[], outputs: Float32Array[]): void;
  /** With relu, y = max(0, normalised). */
  batchNormTraining(x: Float32Array, rows: number, cols: number, gamma: Float32Array, beta: Float32Array, epsilon: number,
    y: Float32Array, mean: Float32Array, variance: Float32Array, relu: boolean): void;
  /** y: the fused forward's output (dy flows where y > 0), or null without a fused ReLU. */
  batchNormTrainingGrad(dy: Float32Array, x: Float32Array, rows: number, cols: number, gamma: Float32Array, mean: Float32Array,
    variance: Float32Array, epsilon: number, dx: Float32Array, dgamma: Float32Array, dbeta: Float32Array, y: Float32Array | null): void;
  /** Shapes as stored, [batch, rows, cols]; batches equal or one of them 1. out: [batch, M, N]. */
  batchMatMul(a: Float32Array, aShape: Shape, b: Float32Array, bShape: Shape, out: Float32Array, transposeA: boolean, transposeB: boolean): void;
  setThreads(n: number): void;
  info(): { version: string; isa: number; threads: number };
}

let loaded: NativeAddon | Error | undefined;

/** The addon, or the one-line reason it cannot be used (not built, libdnnl missing). */
export function nativeAddon(): NativeAddon | Error {
  if (loaded === undefined) {
    try {
      // A bundled function (Lambda) has no package folder: PEERLESS_NATIVE_ADDON names the addon
      // there. A package whose folder this user cannot write has it in the per-user cache.
      const inPackage = addonInPackage();
      const cached = inPackage && !existsSync(inPackage) ? addonInCache() : null;
      const path = process.env[ADDON_ENV] || (cached && existsSync(cached) ? cached : inPackage) || 'peerless_native.node';
      loaded = createRequire(import.meta.url)(path) as NativeAddon;
      const threads = Number(process.env.PEERLESS_NATIVE_THREADS ?? 1);
      if (Number.isInteger(threads) && threads > 1) loaded.setThreads(threads);
    } catch (err) {
      const why = (err as Error).message.split('\n')[0];
      loaded = new Error(`the native backend is not available (${why}); run scripts/setup.sh where libdnnl-dev installs, or use the wasm backend`);
    }
  }
  return loaded;
}

/**
 * The geometry oneDNN needs to take an inH x inW map to an outH x outW one: tfjs's strides,
 * dilations and top and left padding; the bottom and right padding as tfjs computed them
 * where they give these shapes, else what the shapes imply (dimRoundingMode 'ceil' or 'round':
 * the last windows reach past tfjs's padding into zeros, as cpu reads them). null where no
 * padding would (oneDNN would refuse it).
 */
function geometryOf(c: backend_util.Conv2DInfo, inHW: number[], outHW: number[]): Geometry | null {
  const side = (inn: number, out: number, k: number, s: number, before: number, after: number): number | null => {
    if (before < 0 || after < 0 || s < 1) return null;
    if (Math.floor((inn + before + after - k) / s) + 1 === out) return after;
    const implied = (out - 1) * s + k - inn - before;
    return implied >= 0 ? implied : null;
  };
  const bottom = side(inHW[0]!, outHW[0]!, c.effectiveFilterHeight, c.strideHeight, c.padInfo.top, c.padInfo.bottom);
  const right = side(inHW[1]!, outHW[1]!, c.effectiveFilterWidth, c.strideWidth, c.padInfo.left, c.padInfo.right);
  if (bottom === null || right === null) return null;
  return [c.strideHeight, c.strideWidth, c.dilationHeight, c.dilationWidth, c.padInfo.top, c.padInfo.left, bottom, right];
}

/** A float32 tensor's values where wasm keeps them (a view: take it after any allocation). */
function heap(b: BackendWasm, t: TensorInfo): Float32Array {
  if (t.dtype !== 'float32') throw new Error(`native backend: expected float32, got ${t.dtype}`);
  return b.typedArrayFromHeap(t) as Float32Array;
}

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
const nhwc = (attrs: NamedAttrMap) => (attrs.dataFormat ?? 'NHWC') === 'NHWC';
type Shape4 = [number, number, number, number];
type KernelArgs = Parameters<KernelFunc>[0] & { attrs: NamedAttrMap; backend: BackendWasm };

/** Why one of ours hands a call to wasm's own kernel (an attribute it does not handle). */
class Unsupported {
  constructor(readonly why: string) {}
}

const noted = new Set<string>();

/**
 * The addon's `call` writing into `outs`, made for it; on a throw (a case our checks let
 * through) the outputs are given back and the case goes to wasm's own kernel, with a note.
 */
function attempt(b: BackendWasm, outs: TensorInfo[], call: () => void): Unsupported | null {
  try {
    call();
    return null;
  } catch (err) {
    for (const t of outs) b.disposeData(t.dataId);
    return new Unsupported(`an error from the addon (${(err as Error).message.split('\n')[0]})`);
  }
}

/**
 * Ours where we handle the case, else wasm's own kernel (kept from before we replaced it): on
 * null silently (a case wasm does as well), on Unsupported with a note, once per kernel and
 * reason, so a slow path does not go unseen.
 */
function withFallback(theirs: KernelConfig, mine: (args: KernelArgs) => TensorInfo | TensorInfo[] | Unsupported | null): KernelFunc {
  return (args) => {
    const out = mine({ ...args, attrs: args.attrs ?? {}, backend: args.backend as BackendWasm });
    if (out instanceof Unsupported) {
      const note = `native backend: ${theirs.kernelName} with ${out.why} runs on wasm's own kernel`;
      if (!noted.has(note)) {
        noted.add(note);
        process.emitWarning(note);
      }
    }
    return out === null || out instanceof Unsupported ? (theirs.kernelFunc(args) as TensorInfo | TensorInfo[]) : out;
  };
}

// Peerless's models are NHWC only; wasm's own convolutions throw on NCHW too (cpu computes it).
const NCHW = new Unsupported('the NCHW data format');

function kernels(addon: NativeAddon, shipped: Map<string, KernelConfig>): { replaced: KernelConfig[]; added: KernelConfig[] } {
  type Result = TensorInfo | TensorInfo[] | Unsupported | null;
  /** Runs one of wasm's own kernels (a crop, an add) on the way. */
  const host = (b: BackendWasm, name: string, inputs: Record<string, TensorInfo>, attrs: NamedAttrMap = {}): TensorInfo =>
    tf.getKernel(name, HOST)!.kernelFunc({ inputs, attrs, backend: b }) as TensorInfo;
  /** out = relu(bias) per channel or 0, for a convolution that sums over nothing: not the addon's. */
  const fill = (b: BackendWasm, out: TensorInfo, bias: TensorInfo | null = null, relu = false): TensorInfo => {
    const o = heap(b, out);
    if (!bias) return (o.fill(0), out);
    const bv = heap(b, bias), channels = bv.length;
    for (let i = 0; i < o.length; i++) o[i] = relu ? Math.max(bv[i % channels]!, 0) : bv[i % channels]!;
    return out;
  };
  /**
   * dy as the backward passes read it on cpu: cpu walks the output tfjs computes from the
   * input shape, over dy's own rows, so a larger dy (a conv2dTranspose's output side one
   * stride short of it) loses its last rows and columns; a smaller one it reads past (null).
   */
  const fitted = (b: BackendWasm, dy: TensorInfo, outShape: number[]): TensorInfo | null => {
    if (dy.shape.every((d, i) => d === outShape[i])) return dy;
    if (dy.shape.some((d, i) => d < outShape[i]!) || dy.shape[0] !== outShape[0] || dy.shape[3] !== outShape[3]) return null;
    return host(b, 'Slice', { x: dy }, { begin: [0, 0, 0, 0], size: outShape });
  };
  const conv = (b: BackendWasm, x: TensorInfo, filter: TensorInfo, attrs: NamedAttrMap, bias: TensorInfo | null = null, relu = false): TensorInfo | Unsupported => {
    const c = backend_util.computeConv2DInfo(x.shape as Shape4, filter.shape as Shape4, attrs.strides as [number, number],
      (attrs.dilations ?? 1) as number | [number, number], attrs.pad as 'same', attrs.dimRoundingMode as 'floor' | undefined, false, 'channelsLast');
    const g = geometryOf(c, x.shape.slice(1, 3), c.outShape.slice(1, 3));
    if (!g) return new Unsupported(`padding ${JSON.stringify(attrs.pad)} with dimRoundingMode ${String(attrs.dimRoundingMode)}`);
    const out = b.makeOutput(c.outShape, 'float32');
    if (size(c.outShape) === 0) return out;
    if (size(x.shape) === 0 || size(filter.shape) === 0) return fill(b, out, bias, relu);
    return attempt(b, [out], () => addon.conv2d(heap(b, x), x.shape, heap(b, filter), filter.shape, heap(b, out), c.outShape, g, bias ? heap(b, bias) : null, relu)) ?? out;
  };
  // Each of ours keeps wasm's own kernel: its fallback, and what useNativeKernels(false) puts back.
  const config = (kernelName: string, mine: (args: KernelArgs) => Result): KernelConfig => {
    const theirs = tf.getKernel(kernelName, HOST);
    if (!theirs) throw new Error(`native backend: wasm has no ${kernelName} kernel to stand beside`);
    shipped.set(kernelName, theirs);
    return { kernelName, backendName: HOST, kernelFunc: withFallback(theirs, mine) };
  };
  const replaced = [
    // Dilated ones too, on oneDNN (tfjs has no gradient for them).
    config('Conv2D', ({ inputs, attrs, backend }) => (nhwc(attrs) ? conv(backend, inputs.x as TensorInfo, inputs.filter as TensorInfo, attrs) : NCHW)),
    // tfjs-layers' Conv2D layers call the fused op: convolution, then bias and activation.
    config('FusedConv2D', ({ inputs, attrs, backend }) => {
      const activation = (attrs.activation ?? 'linear') as string;
      const filter = inputs.filter as TensorInfo, bias = inputs.bias as TensorInfo | undefined;
      const channels = filter.shape[3]!;
      if (!nhwc(attrs)) return NCHW;
      if (activation !== 'linear' && activation !== 'relu') return new Unsupported(`activation ${activation}`);
      // oneDNN adds the bias and applies the ReLU as it writes the output: a pass of their own
      // in JavaScript over a batch of 256 cost 4x the convolution (evaluation's batches). It
      // adds one per channel; a bias that tfjs broadcasts otherwise ([C, 1] along the width)
      // is added after, by wasm's Add, as cpu does.
      const perChannel = !bias || (bias.shape[bias.shape.length - 1] === channels && size(bias.shape) === channels);
      const y = conv(backend, inputs.x as TensorInfo, filter, attrs, perChannel ? (bias ?? null) : null, perChannel && activation === 'relu');
      if (perChannel || y instanceof Unsupported) return y;
      const sum = host(backend, 'Add', { a: y, b: bias });
      backend.disposeData(y.dataId);
      if (activation !== 'relu') return sum;
      const cut = host(backend, 'Relu', { x: sum });
      backend.disposeData(sum.dataId);
      return cut;
    }),
    config('Conv2DBackpropInput', ({ inputs, attrs, backend }) => {
      if (!nhwc(attrs)) return NCHW;
      const filter = inputs.filter as TensorInfo;
      const inputShape = attrs.inputShape as Shape4;
      const c = backend_util.computeConv2DInfo(inputShape, filter.shape as Shape4, attrs.strides as [number, number], 1,
        attrs.pad as 'same', attrs.dimRoundingMode as 'floor' | undefined, false, 'channelsLast');
      const g = geometryOf(c, inputShape.slice(1, 3), c.outShape.slice(1, 3));
      const dy = g && fitted(backend, inputs.dy as TensorInfo, c.outShape);
      if (!dy || !g) return new Unsupported(`dy of shape [${(inputs.dy as TensorInfo).shape.join(', ')}] for an input of [${inputShape.join(', ')}]`);
      const out = backend.makeOutput(inputShape, 'float32');
      const failed = size(inputShape) === 0 ? null : size(dy.shape) === 0 || size(filter.shape) === 0 ? (fill(backend, out), null)
        : attempt(backend, [out], () => addon.conv2dBackpropInput(heap(backend, dy), dy.shape, heap(backend, filter), filter.shape, heap(backend, out), inputShape, g));
      if (dy !== inputs.dy) backend.disposeData(dy.dataId);
      return failed ?? out;
    }),
    config('Conv2DBackpropFilter', ({ inputs, attrs, backend }) => {
      if (!nhwc(attrs)) return NCHW;
      const x = inputs.x as TensorInfo;
      const filterShape = attrs.filterShape as Shape4;
      const c = backend_util.computeConv2DInfo(x.shape as Shape4, filterShape, attrs.strides as [number, number], 1,
        attrs.pad as 'same', attrs.dimRoundingMode as 'floor' | undefined, false, 'channelsLast');
      const g = geometryOf(c, x.shape.slice(1, 3), c.outShape.slice(1, 3));
      const dy = g && fitted(backend, inputs.dy as TensorInfo, c.outShape);
      if (!dy || !g) return new Unsupported(`dy of shape [${(inputs.dy as TensorInfo).shape.join(', ')}] for an input of [${x.shape.join(', ')}]`);
      const out = backend.makeOutput(filterShape, 'float32');
      // An empty batch (or map) sums over nothing: zeros, and oneDNN is not asked (its matrix
      // product divided by zero on a 1x1 map's empty batch: SIGFPE).
      const failed = size(filterShape) === 0 ? null : size(x.shape) === 0 || size(dy.shape) === 0 ? (fill(backend, out), null)
        : attempt(backend, [out], () => addon.conv2dBackpropFilter(heap(backend, x), x.shape, heap(backend, dy), dy.shape, heap(backend, out), filterShape, g));
      if (dy !== inputs.dy) backend.disposeData(dy.dataId);
      return failed ?? out;
    }),
    // wasm's max-pool gradient is a slow general path; one pass over the windows here.
    config('MaxPoolGrad', ({ inputs, attrs, backend }) => {
      const dy = inputs.dy as TensorInfo, x = inputs.input as TensorInfo;
      if (x.shape.length !== 4 || x.dtype !== 'float32') return new Unsupported(`a ${x.dtype} input of rank ${x.shape.length}`);
      const c = backend_util.computePool2DInfo(x.shape as Shape4, attrs.filterSize as [number, number] | number, attrs.strides as [number, number] | number, 1,
        attrs.pad as 'same', attrs.dimRoundingMode as 'floor' | undefined);
      if (c.dilationHeight !== 1 || c.dilationWidth !== 1) return new Unsupported('dilation');
      const out = backend.makeOutput(x.shape, 'float32');
      if (size(x.shape) === 0) return out;
      if (size(dy.shape) === 0) return fill(backend, out);
      return attempt(backend, [out], () => addon.maxPoolGrad(heap(backend, x), x.shape, heap(backend, dy), dy.shape, heap(backend, out),
        [c.filterHeight, c.filterWidth, c.strideHeight, c.strideWidth, c.padInfo.top, c.padInfo.left])) ?? out;
    }),
    config('AvgPoolGrad', ({ inputs, attrs, backend }) => {
      const x = inputs.input as TensorInfo;
      if (x.shape.length !== 4 || (inputs.dy as TensorInfo).dtype !== 'float32') return new Unsupported(`a ${(inputs.dy as TensorInfo).dtype} input of rank ${x.shape.length}`);
      // As cpu: without dimRoundingMode (cpu's ignores it, walking the floor's output over dy's
      // rows, so a 'ceil' dy loses its last row and column there).
      const c = backend_util.computePool2DInfo(x.shape as Shape4, attrs.filterSize as [number, number] | number, attrs.strides as [number, number] | number, 1,
        attrs.pad as 'same');
      const dy = fitted(backend, inputs.dy as TensorInfo, c.outShape);
      if (!dy) return new Unsupported(`dy of shape [${(inputs.dy as TensorInfo).shape.join(', ')}] for an input of [${x.shape.join(', ')}]`);
      const out = backend.makeOutput(x.shape, 'float32');
      const failed = size(x.shape) === 0 ? null : size(dy.shape) === 0 ? (fill(backend, out), null)
        : attempt(backend, [out], () => addon.avgPoolGrad(heap(backend, dy), dy.shape, heap(backend, out), x.shape,
          [c.filterHeight, c.filterWidth, c.strideHeight, c.strideWidth, c.padInfo.top, c.padInfo.left]));
      if (dy !== inputs.dy) backend.disposeData(dy.dataId);
      return failed ?? out;
    }),
    // Concatenation and its gradient: a run of copies per row (DenseNet's every layer).
    config('Concat', ({ inputs, attrs, backend }) => {
      const all = Object.values(inputs) as TensorInfo[];
      if (all.length < 2 || all.some((t) => t.dtype !== 'float32' || t.shape.length !== all[0]!.shape.length)) return null;
      const axis = tf.util.parseAxisParam(attrs.axis as number, all[0]!.shape)[0]!;
      const outShape = backend_util.computeOutShape(all.map((t) => t.shape), axis);
      const out = backend.makeOutput(outShape, 'float32');
      const outer = size(outShape.slice(0, axis));
      if (size(outShape) === 0) return out;
      return attempt(backend, [out], () => addon.concatRows(all.map((t) => heap(backend, t)), all.map((t) => size(t.shape.slice(axis))), outer, heap(backend, out))) ?? out;
    }),
    config('SplitV', ({ inputs, attrs, backend }) => {
      const x = inputs.x as TensorInfo;
      if (x.dtype !== 'float32' || x.shape.length === 0) return null;
      const axis = tf.util.parseAxisParam(attrs.axis as number, x.shape)[0]!;
      const sizes = backend_util.prepareSplitSize(x as tf.Tensor, attrs.numOrSizeSplits as number | number[], axis);
      const outs = sizes.map((n) => backend.makeOutput(x.shape.map((d, i) => (i === axis ? n : d)), 'float32'));
      const outer = size(x.shape.slice(0, axis)), rest = size(x.shape.slice(axis + 1));
      if (size(x.shape) === 0) return outs;
      return attempt(backend, outs, () => addon.splitRows(heap(backend, x), outer, sizes.map((n) => n * rest), outs.map((t) => heap(backend, t)))) ?? outs;
    }),
    // Every Dense layer, forward and both gradients (x^T dy, dy W^T): oneDNN's matmul reads a
    // transposed operand through its strides, where wasm's runs a transpose first.
    config('BatchMatMul', ({ inputs, attrs, backend }) => {
      const a = inputs.a as TensorInfo, b = inputs.b as TensorInfo;
      // Matrices (a Dense layer's product reaches the kernel as rank 2) or batches of them.
      const rank = a.shape.length;
      if (rank !== b.shape.length || (rank !== 2 && rank !== 3) || a.dtype !== 'float32' || b.dtype !== 'float32') return null;
      const as3 = rank === 3 ? a.shape : [1, ...a.shape], bs3 = rank === 3 ? b.shape : [1, ...b.shape];
      const ta = attrs.transposeA === true, tb = attrs.transposeB === true;
      const batch = Math.max(as3[0]!, bs3[0]!);
      if (as3[0] !== bs3[0] && as3[0] !== 1 && bs3[0] !== 1) return null; // wasm says what is wrong
      const m = ta ? as3[2]! : as3[1]!, k = ta ? as3[1]! : as3[2]!, n = tb ? bs3[1]! : bs3[2]!;
      if (k !== (tb ? bs3[2] : bs3[1])) return null;
      const out = backend.makeOutput(rank === 3 ? [batch, m, n] : [m, n], 'float32');
      if (batch * m * n === 0) return out;
      if (k === 0) return fill(backend, out); // a sum over nothing
      return attempt(backend, [out], () => addon.batchMatMul(heap(backend, a), as3, heap(backend, b), bs3, heap(backend, out), ta, tb)) ?? out;
    }),
    // Sums and means over the leading axes (bias and batch-norm gradients, batch statistics):
    // wasm transposes first; a straight pass over the rows is several times faster.
    config('Sum', ({ inputs, attrs, backend }) => reduceLeading(backend, inputs.x as TensorInfo, attrs, false)),
    config('Mean', ({ inputs, attrs, backend }) => reduceLeading(backend, inputs.x as TensorInfo, attrs, true)),
  ];
  return { replaced, added: added() };

  /** Kernels wasm does not have at all: batch norm in training as one kernel (batch-norm.ts). */
  function added(): KernelConfig[] {
    // No kernel of wasm's to fall back to: the addon's error is thrown, its outputs given back.
    const given = (b: BackendWasm, outs: TensorInfo[], call: () => void): TensorInfo[] => {
      try {
        call();
        return outs;
      } catch (err) {
        for (const t of outs) b.disposeData(t.dataId);
        throw err;
      }
    };
    const kernel = (kernelName: string, kernelFunc: (args: KernelArgs) => TensorInfo[]): KernelConfig => ({
      kernelName, backendName: HOST, kernelFunc: (args) => kernelFunc({ ...args, attrs: args.attrs ?? {}, backend: args.backend as BackendWasm }),
    });
    return [
      kernel(BATCH_NORM_TRAINING, ({ inputs, attrs, backend: b }) => {
        const x = inputs.x as TensorInfo, channels = x.shape[x.shape.length - 1]!;
        const outs = [b.makeOutput(x.shape, 'float32'), b.makeOutput([channels], 'float32'), b.makeOutput([channels], 'float32')];
        // An empty batch: y empty, and the statistics 0, as tfjs's moments give them on cpu.
        if (size(x.shape) === 0) return (outs.slice(1).forEach((t) => fill(b, t)), outs);
        // Views after every allocation: an allocation can grow the heap and detach older ones.
        const [y, mean, variance] = outs.map((t) => heap(b, t));
        return given(b, outs, () => addon.batchNormTraining(heap(b, x), size(x.shape) / channels, channels, heap(b, inputs.gamma as TensorInfo),
          heap(b, inputs.beta as TensorInfo), attrs.epsilon as number, y!, mean!, variance!, attrs.relu === true));
      }),
      kernel(BATCH_NORM_TRAINING_GRAD, ({ inputs, attrs, backend: b }) => {
        const x = inputs.x as TensorInfo, channels = x.shape[x.shape.length - 1]!;
        const outs = [b.makeOutput(x.shape, 'float32'), b.makeOutput([channels], 'float32'), b.makeOutput([channels], 'float32')];
        if (size(x.shape) === 0) return (outs.slice(1).forEach((t) => fill(b, t)), outs); // sums over no rows
        const [dx, dgamma, dbeta] = outs.map((t) => heap(b, t));
        const at = (name: string) => heap(b, inputs[name] as TensorInfo);
        return given(b, outs, () => addon.batchNormTrainingGrad(at('dy'), at('x'), size(x.shape) / channels, channels, at('gamma'), at('mean'),
          at('variance'), attrs.epsilon as number, dx!, dgamma!, dbeta!, attrs.relu === true ? at('y') : null));
      }),
    ];
  }

  function reduceLeading(b: BackendWasm, x: TensorInfo, attrs: NamedAttrMap, mean: boolean): TensorInfo | Unsupported | null {
    if (x.dtype !== 'float32' || x.shape.length === 0) return null;
    const rank = x.shape.length;
    const axes = [...new Set(tf.util.parseAxisParam(attrs.axis as number | number[], x.shape))].sort((a, b2) => a - b2);
    // Reduced axes must be 0..k-1 with k = rank - 1 (a column per channel) or k = rank (all).
    if (axes.length < rank - 1 || axes.some((a, i) => a !== i)) return null;
    const cols = axes.length === rank ? 1 : x.shape[rank - 1]!;
    const rows = size(x.shape) / cols;
    const outShape = attrs.keepDims ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : axes.length === rank ? [] : [cols];
    const out = b.makeOutput(outShape, 'float32');
    if (cols === 0) return out;
    if (rows === 0) return fill(b, out); // cpu's sum and mean of nothing: 0
    return attempt(b, [out], () => addon.sumRows(heap(b, x), rows, cols, heap(b, out), mean ? 1 / rows : 1)) ?? out;
  }
}

const shipped = new Map<string, KernelConfig>();
let ours: { replaced: KernelConfig[]; added: KernelConfig[] } | undefined;

/**
 * Puts oneDNN's kernels into the (initialised) wasm backend (`on`), or wasm's own back
 * (`!on`: for side-by-side measurements). Throws the one-line reason when the addon cannot
 * be loaded.
 */
export function useNativeKernels(on: boolean): void {
  if (ours === undefined && !on) return; // never put in: wasm's own are there
  if (ours === undefined) {
    const addon = nativeAddon();
    if (addon instanceof Error) throw addon;
    ours = kernels(addon, shipped);
    registerBatchNormTrainingGradient();
  }
  for (const k of ours.replaced) {
    tf.unregisterKernel(k.kernelName, HOST);
    tf.registerKernel(on ? k : shipped.get(k.kernelName)!);
  }
  for (const k of ours.added) {
    const present = tf.getKernel(k.kernelName, HOST) !== undefined;
    if (on && !present) tf.registerKernel(k);
    if (!on && present) tf.unregisterKernel(k.kernelName, HOST);
  }
}
