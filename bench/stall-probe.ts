import { Worker } from 'node:worker_threads';

/**
 * Measures how long other clients wait while a benchmark runs: a worker thread (so the
 * benchmark's own CPU work cannot delay it) sends PING back to back on its own connection
 * and records the worst round trip. A command that blocks Redis for 50 ms shows up as a
 * ~50 ms PING.
 */
const PROBE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createClient } = require('redis');
(async () => {
  const c = createClient({ url: workerData.url });
  c.on('error', () => {});
  await c.connect();
  let running = false, worst = 0, pings = 0;
  parentPort.on('message', async (m) => {
    if (m === 'start') {
      running = true; worst = 0; pings = 0;
      while (running) {
        const t = performance.now();
        await c.ping();
        worst = Math.max(worst, performance.now() - t);
        pings++;
        await new Promise((r) => setTimeout(r, 1));
      }
      parentPort.postMessage({ worst, pings });
    } else if (m === 'stop') running = false;
    else if (m === 'close') { await c.close(); process.exit(0); }
  });
  parentPort.postMessage('ready');
})();
`;

export class StallProbe {
  private constructor(private readonly worker: Worker) {}

  static async open(url: string): Promise<StallProbe> {
    const worker = new Worker(PROBE, { eval: true, workerData: { url } });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
    });
    return new StallProbe(worker);
  }

  start(): void {
    this.worker.postMessage('start');
  }

  /** Stops probing; returns the worst PING round trip (ms) since start. */
  async stop(): Promise<{ worstMs: number; pings: number }> {
    const done = new Promise<{ worst: number; pings: number }>((r) => this.worker.once('message', r));
    this.worker.postMessage('stop');
    const { worst, pings } = await done;
    return { worstMs: worst, pings };
  }

  async close(): Promise<void> {
    this.worker.postMessage('close');
    await new Promise((r) => this.worker.once('exit', r));
  }
}
