/**
 * The `native` TensorFlow.js backend: the cpu backend, with the kernels that dominate training
 * time (the convolutions) run by oneDNN through a Node-API addon (native/addon, built by
 * scripts/setup.sh when Debian's libdnnl-dev is there). Every kernel it does not override is
 * the cpu backend's, so any model runs. Activations stay NHWC and filters HWIO, as
 * TensorFlow.js keeps them: oneDNN reads and writes them in place.
 *
 * Single-threaded by default (one function per core); `PEERLESS_NATIVE_THREADS` raises it for a
 * process that has the machine to itself.
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { backend_util } from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';

export const NATIVE = 'native';

type Shape = number[];
/** [strideH, strideW, dilationH, dilationW, padTop, padLeft, padBottom, padRight] */
type Geometry = number[];

export interface NativeAddon {
  conv2d(x: Float32Array, xShape: Shape, w: Float32Array, wShape: Shape, y: Float32Array, yShape: Shape, g: Geometry): void;
  conv2dBackpropInput(dy: Float32Array, dyShape: Shape, w: Float32Array, wShape: Shape, dx: Float32Array, dxShape: Shape, g: Geometry): void;
  conv2dBackpropFilter(x: Float32Array, xShape: Shape, dy: Float32Array, dyShape: Shape, dw: Float32Array, wShape: Shape, g: Geometry): void;
  setThreads(n: number): void;
  info(): { version: string; isa: number; threads: number };
}

const ADDON = '../../native/addon/build/Release/peerless_native.node';

let loaded: NativeAddon | Error | undefined;

/** The addon, or the one-line reason it cannot be used (not built, libdnnl missing). */
export function nativeAddon(): NativeAddon | Error {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)(ADDON) as NativeAddon;
      const threads = Number(process.env.PEERLESS_NATIVE_THREADS ?? 1);
      if (Number.isInteger(threads) && threads > 1) loaded.setThreads(threads);
    } catch (err) {
      const why = (err as Error).message.split('\n')[0];
      loaded = new Error(`the native backend is not available (${why}); run scripts/setup.sh with libdnnl-dev installable, or use the wasm backend`);
    }
  }
  return loaded;
}

const geometryOf = (c: backend_util.Conv2DInfo): Geometry => [
  c.strideHeight, c.strideWidth, c.dilationHeight, c.dilationWidth, c.padInfo.top, c.padInfo.left, c.padInfo.bottom, c.padInfo.right,
];

function values(backend: MathBackendCPU, t: TensorInfo): Float32Array {
  const v = backend.data.get(t.dataId).values;
  if (!(v instanceof Float32Array)) throw new Error(`native backend: expected float32 values, got ${t.dtype}`);
  return v;
}

const nhwc = (attrs: NamedAttrMap) => (attrs.dataFormat ?? 'NHWC') === 'NHWC';

/** A kernel of ours where we handle the case, else the cpu backend's own. */
type KernelArgs = Parameters<KernelFunc>[0] & { attrs: NamedAttrMap };

function withFallback(name: string, mine: (args: KernelArgs) => TensorInfo | null): KernelFunc {
  const cpu = tf.getKernel(name, 'cpu');
  if (!cpu) throw new Error(`native backend: the cpu backend has no ${name} kernel`);
  return (args) => mine({ ...args, attrs: args.attrs ?? {} }) ?? (cpu.kernelFunc(args) as TensorInfo);
}

function conv2dKernels(addon: NativeAddon): KernelConfig[] {
  const forward = (x: TensorInfo, filter: TensorInfo, attrs: NamedAttrMap, backend: MathBackendCPU) => {
    const c = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number], filter.shape as [number, number, number, number],
      attrs.strides as [number, number], (attrs.dilations ?? 1) as number | [number, number], attrs.pad as 'same',
      attrs.dimRoundingMode as 'floor' | undefined, false, 'channelsLast',
    );
    const y = new Float32Array(c.outShape.reduce((a, b) => a * b, 1));
    addon.conv2d(values(backend, x), x.shape, values(backend, filter), filter.shape, y, c.outShape, geometryOf(c));
    return { y, c };
  };
  return [
    {
      kernelName: 'Conv2D', backendName: NATIVE,
      kernelFunc: withFallback('Conv2D', ({ inputs, attrs, backend }) => {
        if (!nhwc(attrs)) return null;
        const { y, c } = forward(inputs.x as TensorInfo, inputs.filter as TensorInfo, attrs, backend as MathBackendCPU);
        return (backend as MathBackendCPU).makeTensorInfo(c.outShape, 'float32', y);
      }),
    },
    {
      // tfjs-layers' Conv2D layers call the fused op: convolution, then bias and activation.
      kernelName: 'FusedConv2D', backendName: NATIVE,
      kernelFunc: withFallback('FusedConv2D', ({ inputs, attrs, backend }) => {
        const activation = (attrs.activation ?? 'linear') as string;
        if (!nhwc(attrs) || (activation !== 'linear' && activation !== 'relu')) return null;
        const cpu = backend as MathBackendCPU;
        const { y, c } = forward(inputs.x as TensorInfo, inputs.filter as TensorInfo, attrs, cpu);
        const channels = c.outChannels;
        const bias = inputs.bias ? values(cpu, inputs.bias as TensorInfo) : null;
        if (bias && bias.length !== channels && bias.length !== 1) return null;
        for (let i = 0; i < y.length; i++) {
          let v = bias ? y[i] + bias[bias.length === 1 ? 0 : i % channels] : y[i];
          if (activation === 'relu' && v < 0) v = 0;
          y[i] = v;
        }
        return cpu.makeTensorInfo(c.outShape, 'float32', y);
      }),
    },
    {
      kernelName: 'Conv2DBackpropInput', backendName: NATIVE,
      kernelFunc: withFallback('Conv2DBackpropInput', ({ inputs, attrs, backend }) => {
        if (!nhwc(attrs)) return null;
        const cpu = backend as MathBackendCPU;
        const dy = inputs.dy as TensorInfo, filter = inputs.filter as TensorInfo;
        const inputShape = attrs.inputShape as [number, number, number, number];
        const c = backend_util.computeConv2DInfo(inputShape, filter.shape as [number, number, number, number], attrs.strides as [number, number], 1,
          attrs.pad as 'same', attrs.dimRoundingMode as 'floor' | undefined, false, 'channelsLast');
        const dx = new Float32Array(inputShape.reduce((a, b) => a * b, 1));
        addon.conv2dBackpropInput(values(cpu, dy), dy.shape, values(cpu, filter), filter.shape, dx, inputShape, geometryOf(c));
        return cpu.makeTensorInfo(inputShape, 'float32', dx);
      }),
    },
    {
      kernelName: 'Conv2DBackpropFilter', backendName: NATIVE,
      kernelFunc: withFallback('Conv2DBackpropFilter', ({ inputs, attrs, backend }) => {
        if (!nhwc(attrs)) return null;
        const cpu = backend as MathBackendCPU;
        const x = inputs.x as TensorInfo, dy = inputs.dy as TensorInfo;
        const filterShape = attrs.filterShape as [number, number, number, number];
        const c = backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filterShape, attrs.strides as [number, number], 1,
          attrs.pad as 'same', attrs.dimRoundingMode as 'floor' | undefined, false, 'channelsLast');
        const dw = new Float32Array(filterShape.reduce((a, b) => a * b, 1));
        addon.conv2dBackpropFilter(values(cpu, x), x.shape, values(cpu, dy), dy.shape, dw, filterShape, geometryOf(c));
        return cpu.makeTensorInfo(filterShape, 'float32', dw);
      }),
    },
  ];
}

let registered = false;

/**
 * Registers the `native` backend (once): the cpu backend's kernels, with the convolutions
 * replaced. Throws the one-line reason when the addon cannot be loaded.
 */
export function registerNativeBackend(): void {
  if (registered) return;
  const addon = nativeAddon();
  if (addon instanceof Error) throw addon;
  tf.registerBackend(NATIVE, () => new MathBackendCPU(), -1);
  const ours = conv2dKernels(addon);
  const overridden = new Set(ours.map((k) => k.kernelName));
  for (const k of tf.getKernelsForBackend('cpu')) {
    if (!overridden.has(k.kernelName)) tf.registerKernel({ ...k, backendName: NATIVE });
  }
  for (const k of ours) tf.registerKernel(k);
  registered = true;
}
