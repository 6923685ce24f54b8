import { endianness } from 'node:os';

// Tensors are stored little-endian; a typed-array view is only the right reading on an LE host.
if (endianness() !== 'LE') throw new Error('peerless needs a little-endian host (float32 tensors are stored little-endian)');

/** Elements per chunk for large reads and writes: ~4 MB, so one command never stalls Redis long. */
export const CHUNK_ELEMENTS = 1 << 20;

/** A zero-copy Buffer view of a Float32Array, for sending. */
export function toBytes(values: Float32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

/**
 * Copies reply bytes into an aligned Float32Array (client Buffers are not 4-byte aligned,
 * so a direct view would throw).
 */
export function fromBytes(bytes: Buffer, what = 'tensor'): Float32Array {
  if (bytes.length % 4 !== 0) throw new Error(`${what} has ${bytes.length} bytes, not a multiple of 4`);
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** Copies `bytes` into `target` at element `offset`. */
export function copyInto(target: Float32Array, offset: number, bytes: Buffer): void {
  new Uint8Array(target.buffer, target.byteOffset + offset * 4, bytes.length).set(bytes);
}

/** Splits [0, length) into chunks of at most CHUNK_ELEMENTS. */
export function chunks(length: number, size = CHUNK_ELEMENTS): { offset: number; count: number }[] {
  const out: { offset: number; count: number }[] = [];
  for (let offset = 0; offset < length; offset += size) out.push({ offset, count: Math.min(size, length - offset) });
  return out;
}
