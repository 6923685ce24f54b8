import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageFunction } from '../../src/functions/package.ts';
import { credentialsFor } from '../../src/peer/net/access.ts';
import { spawnCli } from '../../bench/peer-process.ts';
import { serverlessCli, startOfflineLambda, type OfflineLambda } from '../serverless-offline/offline.ts';

/**
 * Lambda as a user deploys it: `function package` writes the zip and a serverless.yml, the
 * Serverless Framework runs that file (serverless-offline: the real Invoke API on a loopback
 * port, no AWS account here), and `peerless train --platform aws-lambda --advertise` trains
 * through it. The functions log in to the peers' Redis as their ACL user, whose password the
 * service reads from the deploying shell, as the generated file says.
 */
const cli = serverlessCli();
if (!cli) console.warn('SKIPPED lambda-offline tests: serverless@3 is not installed (npm install)');
const SECRET = 'lambda-offline-secret';
const AWS_ENV = { AWS_ACCESS_KEY_ID: 'offline', AWS_SECRET_ACCESS_KEY: 'offline', AWS_REGION: 'us-east-1' };

async function peerless(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = spawnCli(args, AWS_ENV);
  const { code } = await run.exit;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

describe.skipIf(!cli)('the generated serverless.yml, run by the Serverless Framework offline', () => {
  let dir: string;
  let offline: OfflineLambda;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'peerless-deploy-'));
    const pkg = await packageFunction(dir);
    offline = await startOfflineLambda({
      zipPath: pkg.path,
      service: pkg.templates.find((f) => f.endsWith('serverless.yml'))!,
      env: { PEERLESS_REDIS_PASSWORD: credentialsFor('functions', SECRET).password },
    });
  }); // the suite's hook bound (600 s): packing and starting took past 180 s on a loaded machine
  afterAll(async () => {
    await offline?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('trains 2 peers for 2 rounds through the Lambda API with --advertise, identical at the end', async () => {
    const r = await peerless(['train', '--platform', 'aws-lambda', '--endpoint', offline.endpoint, '--advertise', '127.0.0.1',
      '--password', SECRET, '--peers', '2', '--rounds', '2', '--batches-per-round', '2', '--json']);
    expect(r.code, `${r.stderr}\n${offline.logs().slice(-3000)}`).toBe(0);
    const summary = JSON.parse(r.stdout) as { rounds: number; identical: boolean; gradientInvocations: number; test: { accuracy: number } | null };
    expect(summary.rounds).toBe(2);
    expect(summary.identical).toBe(true);
    expect(summary.gradientInvocations).toBe(2 * 2 * 2);
    expect(summary.test?.accuracy).toBeGreaterThan(0);
  }, 600_000);

  it('without --advertise, the aws-lambda platform refuses to start and says why', async () => {
    const r = await peerless(['train', '--platform', 'aws-lambda', '--endpoint', offline.endpoint, '--peers', '2', '--rounds', '2']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^peerless: --platform aws-lambda needs --advertise HOST: the functions run in AWS and cannot reach this machine's redis-servers at 127\.0\.0\.1/);
  });
});
