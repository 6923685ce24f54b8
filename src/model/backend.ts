/**
 * Chooses and initialises the TensorFlow.js compute backend, once per process.
 *
 * 'auto' prefers `@tensorflow/tfjs-node` (native libtensorflow) when it can be imported, then
 * 'native' (wasm with the addon's oneDNN kernels, native-backend.ts) when its addon loads, else wasm
 * with SIMD. tfjs-node is NOT a dependency of
 * this project: its install script downloads libtensorflow, which these machines cannot
 * fetch, so it is looked for with a dynamic import inside try/catch and never imported
 * statically. Whoever has it installed gets it; everyone else gets wasm.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// tfjs-core's Node bundle registers no gradients; tfjs-layers' bundle registers them all.
import '@tensorflow/tfjs-layers';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels } from './wasm-kernels.js';
import { NATIVE, nativeAddon, useNativeKernels } from './native-backend.js';

export type BackendChoice = 'wasm' | 'cpu' | 'native' | 'tensorflow' | 'auto';

let ready: Promise<string> | undefined;
let readyFor: BackendChoice | undefined;

/**
 * Initialises the backend and returns its name ('tensorflow', 'wasm' or 'cpu'). Idempotent:
 * later calls reuse the first choice; asking for a different backend explicitly switches.
 */
export async function initBackend(preferred: BackendChoice = 'auto'): Promise<string> {
  if (ready === undefined || (readyFor !== preferred && preferred !== 'auto')) {
    readyFor = preferred;
    ready = choose(preferred);
    // A failed initialisation must not stick: the next call tries again.
    ready.catch(() => {
      ready = undefined;
      readyFor = undefined;
    });
  }
  const name = await ready;
  // Someone (a test, a benchmark) may have switched backends since: switch back. "native" is
  // wasm with the addon's kernels (native-backend.ts).
  const tfName = name === NATIVE ? 'wasm' : name;
  if (tf.getBackend() !== tfName) await activate(tfName);
  return name;
}

async function choose(preferred: BackendChoice): Promise<string> {
  if (preferred === 'tensorflow' || preferred === 'auto') {
    if (await tryTfjsNode()) return activate('tensorflow');
    if (preferred === 'tensorflow') {
      throw new Error('backend "tensorflow" requested but @tensorflow/tfjs-node cannot be imported (it is optional: install it where libtensorflow can be downloaded)');
    }
  }
  if (preferred === 'cpu') return activate('cpu');
  useNativeKernels(false); // wasm's own convolutions, should "native" have come first
  // "auto" takes the addon's kernels where it loads (built by setup where Debian's
  // libdnnl-dev installs), else plain wasm; "native" insists on them.
  if (preferred === 'native' || (preferred === 'auto' && !(nativeAddon() instanceof Error))) {
    await activateWasm();
    useNativeKernels(true);
    return NATIVE;
  }
  return activateWasm();
}

async function tryTfjsNode(): Promise<boolean> {
  // A variable specifier keeps bundlers and tsc from resolving the optional package.
  const name = '@tensorflow/tfjs-node';
  try {
    await import(name);
    return tf.findBackendFactory('tensorflow') !== null;
  } catch {
    return false;
  }
}

let wasmPathsSet = false;

async function activateWasm(): Promise<string> {
  if (!wasmPathsSet) {
    // In Node the .wasm binaries are read from the package's dist/ folder.
    const require = createRequire(import.meta.url);
    const pkg = require.resolve('@tensorflow/tfjs-backend-wasm/package.json');
    setWasmPaths(join(dirname(pkg), 'dist') + '/');
    wasmPathsSet = true;
  }
  // Threads need workers the Node build does not start; SIMD is what makes wasm fast.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  registerWasmTrainingKernels();
  return activate('wasm');
}

async function activate(name: string): Promise<string> {
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`backend "${name}" failed to initialise`);
  await tf.ready();
  return tf.getBackend();
}
