import type { Redis } from '../src/tensor/redis-client.ts';

/** A redis-server's CPU so far (INFO cpu: user + system, all its threads), ms. */
export async function serverCpuMs(c: Redis): Promise<number> {
  const info = String(await c.sendCommand(['INFO', 'cpu']));
  const field = (f: string) => Number(new RegExp(`${f}:([0-9.]+)`).exec(info)?.[1] ?? NaN);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
}
