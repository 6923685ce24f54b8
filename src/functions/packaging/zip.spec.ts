import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32, createZip } from './zip.ts';

/** Reads entries back through the central directory, as unzip tools do. */
function readZip(zip: Buffer): Map<string, { data: Buffer; mode: number }> {
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  const out = new Map<string, { data: Buffer; mode: number }>();
  for (let i = 0; i < count; i++) {
    expect(zip.readUInt32LE(p)).toBe(0x02014b50);
    const method = zip.readUInt16LE(p + 10);
    const crc = zip.readUInt32LE(p + 16);
    const csize = zip.readUInt32LE(p + 20);
    const nameLen = zip.readUInt16LE(p + 28);
    const mode = zip.readUInt32LE(p + 38) >>> 16;
    const local = zip.readUInt32LE(p + 42);
    const name = zip.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const raw = zip.subarray(start, start + csize);
    const data = method === 8 ? inflateRawSync(raw) : Buffer.from(raw);
    expect(crc32(data)).toBe(crc);
    out.set(name, { data, mode });
    p += 46 + nameLen + zip.readUInt16LE(p + 30) + zip.readUInt16LE(p + 32);
  }
  return out;
}

describe('createZip', () => {
  it('crc32 matches the standard check value', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });

  it('round-trips deflated and stored entries with their modes', () => {
    const text = Buffer.from('export const handler = async () => 1;\n'.repeat(50));
    const random = Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 97 + 13) & 0xff));
    const zip = createZip([
      { path: 'lambda-entry.mjs', data: text },
      { path: 'node_modules/x/dist/a.wasm', data: random, mode: 0o755 },
      { path: 'empty', data: Buffer.alloc(0) },
    ]);
    const back = readZip(zip);
    expect(back.get('lambda-entry.mjs')?.data.equals(text)).toBe(true);
    expect(back.get('lambda-entry.mjs')?.mode).toBe(0o100644);
    expect(back.get('node_modules/x/dist/a.wasm')?.data.equals(random)).toBe(true);
    expect(back.get('node_modules/x/dist/a.wasm')?.mode).toBe(0o100755);
    expect(back.get('empty')?.data.length).toBe(0);
    expect(zip.length).toBeLessThan(text.length);
  });

  it('is accepted by the unzip tool when there is one', () => {
    let unzip = true;
    try { execFileSync('unzip', ['-v'], { stdio: 'ignore' }); } catch { unzip = false; }
    if (!unzip) return;
    const dir = mkdtempSync(join(tmpdir(), 'peerless-zip-'));
    try {
      const zipPath = join(dir, 'a.zip');
      writeFileSync(zipPath, createZip([{ path: 'd/f.txt', data: Buffer.from('hello\n'), mode: 0o640 }]));
      execFileSync('unzip', ['-q', zipPath, '-d', join(dir, 'x')]);
      expect(readFileSync(join(dir, 'x/d/f.txt'), 'utf8')).toBe('hello\n');
      expect(statSync(join(dir, 'x/d/f.txt')).mode & 0o777).toBe(0o640);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
