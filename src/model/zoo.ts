/**
 * The model zoo: named TF.js layers models for any image size and class count (MNIST's
 * 28x28x1 and 10 by default), and `mlp` for inputs of any shape (tabular rows).
 *
 * Every layer is named explicitly (layer names make the layout, so they must not depend on
 * how many models the process built before), and weights are initialised from a seed in
 * plain JS (init.ts), so every peer builds identical parameters.
 *
 * Adaptations to 28x28 (the ImageNet stems would shrink MNIST to nothing):
 *   - vgg11: the 8 conv layers of VGG-11 (config A) with 3x3 'same' convs; four 2x2 max-pools
 *     (28 -> 14 -> 7 -> 3 -> 1) instead of five; classifier Dense(512)-ReLU-Dense(10)
 *     instead of 4096-4096-1000. No batch norm (the original VGG-11).
 *   - resnet18: stem conv3x3/64, stride 1, no max-pool (as for CIFAR); four stages of two
 *     BasicBlocks (64, 128, 256, 512; strides 1, 2, 2, 2: 28 -> 14 -> 7 -> 4); 1x1
 *     projection shortcuts; global average pool; Dense(10). Convs have no bias (BN follows).
 *   - densenet121: stem conv3x3/64, stride 1, no max-pool; dense blocks 6-12-24-16, growth
 *     32, bottleneck 4x growth, compression 0.5 (transitions 28 -> 14 -> 7 -> 3); BN-ReLU,
 *     global average pool, Dense(10).
 * Width multiplier: every channel count c becomes max(1, round(c * width)).
 *
 * BN layers use momentum 0, so after a training-mode forward pass their moving statistics
 * hold that batch's statistics: gradient.ts reads them from there (see flat.ts).
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { MNIST_SPEC, outputsOf, type SampleSpec } from '../data/spec.js';
import { getLayout, setFlatParams } from './flat.js';
import { initialParams } from './init.js';

export const MODEL_NAMES = ['cnn', 'vgg11', 'resnet18', 'densenet121', 'mlp'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

/** What a zoo model is built for: the input's shape and its outputs (classes, or regression targets). */
export interface ModelShape {
  input: number[];
  classes: number;
}

const shapeOf = (s: SampleSpec): ModelShape => ({ input: s.shape, classes: outputsOf(s) });

type T = tfl.SymbolicTensor;

/** Channel count under a width multiplier: never below 1. */
export function scaled(channels: number, width: number): number {
  return Math.max(1, Math.round(channels * width));
}

const zeros = 'zeros' as const;

function conv(x: T, name: string, filters: number, kernel: number, stride = 1, opts: { bias?: boolean; relu?: boolean; padding?: 'same' | 'valid' } = {}): T {
  return tfl.layers
    .conv2d({
      name,
      filters,
      kernelSize: kernel,
      strides: stride,
      padding: opts.padding ?? 'same',
      useBias: opts.bias ?? false,
      activation: opts.relu === true ? 'relu' : 'linear',
      // Real values come from init.ts; zeros keep the build fast.
      kernelInitializer: zeros,
      biasInitializer: zeros,
    })
    .apply(x) as T;
}

function bn(x: T, name: string): T {
  return tfl.layers.batchNormalization({ name, axis: -1, momentum: 0, epsilon: 1e-5 }).apply(x) as T;
}

function relu(x: T, name: string): T {
  return tfl.layers.activation({ name, activation: 'relu' }).apply(x) as T;
}

function dense(x: T, name: string, units: number, relu: boolean): T {
  return tfl.layers.dense({ name, units, activation: relu ? 'relu' : 'linear', kernelInitializer: zeros, biasInitializer: zeros }).apply(x) as T;
}

function input(shape: ModelShape): T {
  return tfl.input({ shape: shape.input, name: 'image' });
}

/**
 * Small CNN: conv3x3/32-maxpool-conv3x3/64-maxpool-dense128-dense10 (225k params). The
 * Keras example's conv32-conv64-pool layout costs ~4x the FLOPs (its second conv runs at
 * 26x26) for no gain on MNIST; pooling after each conv keeps a batch-64 gradient well under
 * 150 ms on one wasm core.
 */
function cnn(width: number, shape: ModelShape): tfl.LayersModel {
  const x = input(shape);
  let h = conv(x, 'conv1', scaled(32, width), 3, 1, { bias: true, relu: true, padding: 'valid' });
  h = tfl.layers.maxPooling2d({ name: 'pool1', poolSize: 2 }).apply(h) as T;
  h = conv(h, 'conv2', scaled(64, width), 3, 1, { bias: true, relu: true, padding: 'valid' });
  h = tfl.layers.maxPooling2d({ name: 'pool2', poolSize: 2 }).apply(h) as T;
  h = tfl.layers.flatten({ name: 'flatten' }).apply(h) as T;
  h = dense(h, 'fc1', scaled(128, width), true);
  const y = dense(h, 'logits', shape.classes, false);
  return tfl.model({ name: 'cnn', inputs: x, outputs: y });
}

function vgg11(width: number, shape: ModelShape): tfl.LayersModel {
  const x = input(shape);
  const cfg: Array<number | 'M'> = [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512];
  let h = x;
  let c = 0;
  let p = 0;
  for (const v of cfg) {
    if (v === 'M') h = tfl.layers.maxPooling2d({ name: `pool${++p}`, poolSize: 2 }).apply(h) as T;
    else h = conv(h, `conv${++c}`, scaled(v, width), 3, 1, { bias: true, relu: true });
  }
  h = tfl.layers.flatten({ name: 'flatten' }).apply(h) as T;
  h = dense(h, 'fc1', scaled(512, width), true);
  const y = dense(h, 'logits', shape.classes, false);
  return tfl.model({ name: 'vgg11', inputs: x, outputs: y });
}

function basicBlock(x: T, name: string, inC: number, outC: number, stride: number): T {
  let h = conv(x, `${name}_conv1`, outC, 3, stride);
  h = relu(bn(h, `${name}_bn1`), `${name}_relu1`);
  h = bn(conv(h, `${name}_conv2`, outC, 3, 1), `${name}_bn2`);
  let shortcut = x;
  if (stride !== 1 || inC !== outC) {
    shortcut = bn(conv(x, `${name}_down_conv`, outC, 1, stride), `${name}_down_bn`);
  }
  return relu(tfl.layers.add({ name: `${name}_add` }).apply([h, shortcut]) as T, `${name}_out`);
}

function resnet18(width: number, shape: ModelShape): tfl.LayersModel {
  const x = input(shape);
  let c = scaled(64, width);
  let h = relu(bn(conv(x, 'stem_conv', c, 3), 'stem_bn'), 'stem_relu');
  const stages = [64, 128, 256, 512];
  stages.forEach((channels, s) => {
    const outC = scaled(channels, width);
    for (let b = 0; b < 2; b++) {
      h = basicBlock(h, `l${s + 1}_b${b}`, c, outC, b === 0 && s > 0 ? 2 : 1);
      c = outC;
    }
  });
  h = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(h) as T;
  const y = dense(h, 'logits', shape.classes, false);
  return tfl.model({ name: 'resnet18', inputs: x, outputs: y });
}

function densenet121(width: number, shape: ModelShape): tfl.LayersModel {
  const growth = scaled(32, width);
  const x = input(shape);
  let c = scaled(64, width);
  let h = conv(x, 'stem_conv', c, 3);
  const blocks = [6, 12, 24, 16];
  blocks.forEach((layers, bi) => {
    for (let l = 0; l < layers; l++) {
      const n = `d${bi + 1}_l${l + 1}`;
      let y = relu(bn(h, `${n}_bn1`), `${n}_relu1`);
      y = conv(y, `${n}_conv1`, 4 * growth, 1);
      y = relu(bn(y, `${n}_bn2`), `${n}_relu2`);
      y = conv(y, `${n}_conv2`, growth, 3);
      h = tfl.layers.concatenate({ name: `${n}_cat`, axis: -1 }).apply([h, y]) as T;
      c += growth;
    }
    if (bi < blocks.length - 1) {
      const n = `t${bi + 1}`;
      c = Math.max(1, Math.floor(c / 2));
      h = relu(bn(h, `${n}_bn`), `${n}_relu`);
      h = conv(h, `${n}_conv`, c, 1);
      h = tfl.layers.averagePooling2d({ name: `${n}_pool`, poolSize: 2 }).apply(h) as T;
    }
  });
  h = relu(bn(h, 'final_bn'), 'final_relu');
  h = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(h) as T;
  const y = dense(h, 'logits', shape.classes, false);
  return tfl.model({ name: 'densenet121', inputs: x, outputs: y });
}

/**
 * A multilayer perceptron for inputs of any shape (flattened): Dense(256)-ReLU-Dense(128)-ReLU
 * and the logits. The zoo's preset for tabular data (CSV, NPY rows).
 */
function mlp(width: number, shape: ModelShape): tfl.LayersModel {
  const x = input(shape);
  let h = shape.input.length > 1 ? tfl.layers.flatten({ name: 'flatten' }).apply(x) as T : x;
  h = dense(h, 'fc1', scaled(256, width), true);
  h = dense(h, 'fc2', scaled(128, width), true);
  const y = dense(h, 'logits', shape.classes, false);
  return tfl.model({ name: 'mlp', inputs: x, outputs: y });
}

const builders: Record<ModelName, (width: number, shape: ModelShape) => tfl.LayersModel> = { cnn, vgg11, resnet18, densenet121, mlp };

/**
 * Whether a zoo model's gradient runs checkpointed unless told otherwise (checkpoint.ts):
 * densenet121 at full width needs it to fit batch 64 in wasm's 4 GiB heap (6.5 GB without).
 */
export function checkpointedByDefault(name: string): boolean {
  return name === 'densenet121';
}

export function isModelName(name: string): name is ModelName {
  return (MODEL_NAMES as readonly string[]).includes(name);
}

/**
 * Builds a zoo model with seeded initial weights for samples `spec` (MNIST's by default): the
 * same (name, width, seed, spec) gives bit-identical parameters on every peer and backend.
 * Needs an initialised backend.
 */
export function buildModel(name: string, width = 1, seed = 0, spec: SampleSpec = MNIST_SPEC): tfl.LayersModel {
  if (!isModelName(name)) {
    throw new Error(`unknown model "${name}": expected one of ${MODEL_NAMES.join(', ')}, or a model.json file`);
  }
  if (!(Number.isFinite(width) && width > 0)) throw new Error(`width must be a positive number, got ${width}`);
  if (name !== 'mlp' && spec.shape.length !== 3) {
    throw new Error(`model "${name}" takes images (height x width x channels), the data's samples are [${spec.shape.join(', ')}]: use mlp or a model.json`);
  }
  const model = builders[name](width, shapeOf(spec));
  setFlatParams(model, initialParams(getLayout(model), seed));
  return model;
}
