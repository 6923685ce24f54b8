import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDashboard } from '../../src/cli/dashboard/server.ts';
import { train } from '../../src/cli/commands/train.ts';
import { parseTrainingConfig } from '../../src/config/training.ts';
import { LocalPlatform } from '../../src/platform/local/local-platform.ts';

/**
 * `train --dashboard` in a real browser: Debian's Chromium (installed by `scripts/setup.sh
 * --tests`), driven by playwright-core, watches a real 2-peer run on real MNIST with the real
 * local platform. It waits for what it asserts to appear on the page, never for a moment.
 */
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
if (!CHROMIUM) console.warn('dashboard browser test skipped: no chromium (scripts/setup.sh --tests installs it with apt-get)');
const SCREENSHOT = fileURLToPath(new URL('../../runs/test/dashboard.png', import.meta.url));

let platform: LocalPlatform;

beforeAll(async () => {
  platform = new LocalPlatform({ workers: 2 });
  await platform.warm();
});

afterAll(async () => {
  await platform.close();
});

describe('the live dashboard', () => {
  it.skipIf(!CHROMIUM)('shows both peers past round 2 and their loss curves while a real run trains, with no console error', async () => {
    const dashboard = await startDashboard({ port: 0 });
    let browser: Browser | undefined;
    try {
      const config = parseTrainingConfig({ model: { name: 'cnn' }, dataset: 'mnist', batchesPerRound: 1, maxRounds: 8, checkEvery: 4, validationSize: 500, seed: 3 });
      const run = train({ peers: 2, config, platform, quiet: true, dashboard });
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
      })()`, undefined, { timeout: 110_000 });
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
