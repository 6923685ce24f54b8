import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { startDashboard } from '../../src/cli/dashboard/server.ts';
import { attachDashboard } from '../../src/cli/commands/dashboard.ts';
import { startRedisServer } from '../../src/cluster/redis-server.ts';
import { TestNetwork } from './in-process-network.ts';
import { train } from '../../src/cli/commands/train.ts';
import { parseTrainingConfig } from '../../src/config/training.ts';
import { useLocalPlatform } from './local-platform-fixture.ts';

/**
 * `train --dashboard` in a real browser: Debian's Chromium (installed by `scripts/setup.sh
 * --tests`), driven by playwright-core, watches a real 2-peer run on real MNIST with the real
 * local platform. It waits for what it asserts to appear on the page, never for a moment.
 */
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
if (!CHROMIUM) console.warn('dashboard browser test skipped: no chromium (scripts/setup.sh --tests installs it with apt-get)');
const SCREENSHOT = fileURLToPath(new URL('../../runs/test/dashboard.png', import.meta.url));

const platformOf = useLocalPlatform();

/** Reads a dashboard's event stream until `done` says it has seen enough (or the bound passes). */
async function events(url: string, done: (rounds: { peer: string; round: number }[], logs: string[]) => boolean): Promise<{ rounds: { peer: string; round: number }[]; logs: string[] }> {
  const abort = new AbortController();
  const res = await fetch(new URL('/events', url), { signal: abort.signal });
  const reader = res.body!.getReader();
  const rounds: { peer: string; round: number }[] = [], logs: string[] = [];
  let buf = '';
  try {
    while (!done(rounds, logs)) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      buf += Buffer.from(value).toString();
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const [head, data] = buf.slice(0, i).split('\n');
        buf = buf.slice(i + 2);
        const event = head.slice('event: '.length), body = JSON.parse(data.slice('data: '.length));
        if (event === 'snapshot') { rounds.push(...body.rounds); logs.push(...body.logs.map((l: { msg: string }) => l.msg)); }
        if (event === 'round') rounds.push(body);
        if (event === 'log') logs.push(body.msg);
      }
    }
  } finally {
    abort.abort();
  }
  return { rounds, logs };
}

describe('the live dashboard', () => {
  it('attaches to a running network through one peer\'s Redis and follows every member', async () => {
    const config = parseTrainingConfig({ model: { name: 'cnn', width: 0.25 }, dataset: 'synthetic', syntheticSize: 1024, batchesPerRound: 1, epochs: 100, checkEvery: 5, validationSize: 128, seed: 5, deadlineMs: 20_000 });
    const net = new TestNetwork(config, platformOf());
    const peers = await net.foundingGroup(2);
    const attached = await attachDashboard({ redis: net.servers[1].url, port: 0 });
    try {
      // Rounds reach the page from both members' logs (history first, then as they come),
      // and the membership is said.
      const seen = await events(attached.dashboard.url, (rounds, logs) =>
        ['p00', 'p01'].every((p) => rounds.filter((r) => r.peer === p).length >= 3) && logs.filter((l) => / is a member /.test(l)).length === 2);
      expect(seen.logs).toEqual(expect.arrayContaining(['p00 is a member (from round 0)', 'p01 is a member (from round 0)']));
      for (const p of ['p00', 'p01']) {
        const mine = seen.rounds.filter((r) => r.peer === p).map((r) => r.round);
        expect(mine.slice(0, 3)).toEqual([0, 1, 2]); // in order, none missed
      }
    } finally {
      await attached.stop();
      await net.stop(peers);
      await net.close(peers);
      await net.dispose();
    }
  });

  it('says when the Redis it is given holds no network', async () => {
    const empty = await startRedisServer();
    try {
      await expect(attachDashboard({ redis: empty.url, port: 0 })).rejects.toThrow(`${empty.url} holds no Peerless network (no peerless:config): give the Redis of a peer of a running network`);
    } finally {
      await empty.stop();
    }
  });

  it.skipIf(!CHROMIUM)('shows both peers past round 2 and their loss curves while a real run trains, with no console error', async () => {
    const dashboard = await startDashboard({ port: 0 });
    let browser: Browser | undefined;
    try {
      const config = parseTrainingConfig({ model: { name: 'cnn' }, dataset: 'mnist', batchesPerRound: 1, maxRounds: 8, checkEvery: 4, validationSize: 500, seed: 3 });
      const run = train({ peers: 2, config, platform: platformOf(), quiet: true, dashboard });
      // As root (CI) Chromium needs --no-sandbox.
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const errors: string[] = [];
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(dashboard.url);

      // (Expressions evaluated in the page, as strings: this project's types have no DOM.)
      await page.waitForFunction(`(() => {
        const rows = [...document.querySelectorAll('#peers tr')];
        return rows.length === 2 && rows.every((r) => Number(r.dataset.round) >= 2) && Number(document.body.dataset.lossPoints) > 0;
      })()`, undefined, { timeout: 400_000 }); // a bound against a hang, below the test's 600 s
      const summary = await run;
      // The end of the run reaches the page too.
      await page.waitForFunction(`document.getElementById('state').className === 'done'`, undefined, { timeout: 30_000 });
      expect(await page.textContent('#state')).toContain('Training finished: round limit 8 reached');
      expect(summary.rounds).toBe(8);
      expect(Number(await page.getAttribute('body', 'data-loss-points'))).toBe(16); // 8 rounds x 2 peers
      mkdirSync(fileURLToPath(new URL('.', `file://${SCREENSHOT}`)), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await browser?.close();
      await dashboard.close();
    }
  });

  it('train --plot draws the run and its learning curve at the end', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'peerless-plot-'));
    try {
      const config = parseTrainingConfig({ model: { name: 'cnn', width: 0.25 }, dataset: 'synthetic', syntheticSize: 512, batchesPerRound: 1, maxRounds: 4, validationSize: 64, checkEvery: 2, seed: 9 });
      const summary = await train({ peers: 2, config, platform: platformOf(), quiet: true, plotDir: dir });
      expect(summary.plotted).toEqual([join(dir, 'run.svg'), join(dir, 'learning-curve.svg')]);
      const [run, curve] = summary.plotted!.map((f) => readFileSync(f, 'utf8'));
      for (const svg of [run, curve]) expect(svg.startsWith('<svg')).toBe(true);
      // The four panels of peerless plot, with the phases the round spent its time in.
      for (const s of ['loss against wall time', 'time per phase, mean over peers', 'bytes received per round, all peers', 'compute', 'verify', 'loss, peer-00', 'loss, peer-01']) expect(run).toContain(s);
      expect(curve).toContain('Training loss and validation accuracy, 2 peer(s)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names a port that is in use', async () => {
    const first = await startDashboard({ port: 0 });
    try {
      const port = Number(new URL(first.url).port);
      await expect(startDashboard({ port })).rejects.toThrow(`--dashboard: port ${port} on 127.0.0.1 is in use; pick another (--dashboard PORT) or 0 for any free port`);
    } finally {
      await first.close();
    }
  });
});
