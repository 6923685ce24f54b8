/**
 * Tensors outlive the process and reach replicas: RDB snapshots (readable even without the
 * module, as plain strings), AOF replay of the module's own commands, and verbatim
 * replication to a replica that runs the same commands to the same bytes.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../src/cluster/redis-server.ts';
import { bytes, cmd, connect, f32, getBytes, randomTensor, start, stopAll, waitFor, type Client } from './helpers.ts';

const cleanup: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'peerless-module-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts a server and registers it for cleanup even if a test fails midway. */
async function startTracked(opts: Parameters<typeof start>[0]): Promise<{ server: RedisServer; client: Client }> {
  const s = await start(opts);
  cleanup.push(() => stopAll(s.client, s.server));
  return s;
}

/** A small training round through the module: ACCUM to an average, then SGD and ADAM. */
async function round(client: Client): Promise<string[]> {
  const n = 3001;
  await cmd(client, 'PL.SET', 'params', bytes(randomTensor(n, 1)));
  await cmd(client, 'PL.SET', 'aparams', bytes(randomTensor(n, 2)));
  for (const k of [0, 1, 2]) await cmd(client, 'PL.ACCUM', 'sum', 'avg', `batch${k}`, '3', bytes(randomTensor(n, 10 + k)));
  await cmd(client, 'PL.ACCUM', 'sum', 'avg', 'batch1', '3', bytes(randomTensor(n, 99))); // a retry
  await cmd(client, 'PL.ACCUM', 'half', 'havg', 'a', '2', bytes(f32(1, 2)), 'OFFSET', '3', 'TOTAL', '6');
  for (let s = 0; s < 2; s++) {
    await cmd(client, 'PL.SGD', 'params', 'avg', 'vel', '0.1', '0.9', 'NESTEROV', 'WD', '0.001');
    await cmd(client, 'PL.ADAM', 'aparams', 'avg', 'm', 'v', 'step', '0.001', 'WD', '0.01', 'DECOUPLED');
  }
  await cmd(client, 'PL.AGGREGATE', 'agg', 'MEDIAN', '3', 'params', 'aparams', 'avg');
  await cmd(client, 'PL.SCALE', 'agg', '0.5');
  await cmd(client, 'PL.SETRANGE', 'agg', '10', bytes(f32(7, 8, 9)));
  await cmd(client, 'PL.ZEROS', 'zeros', '100');
  return ['params', 'aparams', 'sum', 'avg', 'vel', 'm', 'v', 'step', 'half', 'agg', 'zeros'];
}

async function values(client: Client, keys: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const k of keys) out.set(k, ((await getBytes(client, k)) ?? Buffer.from('<missing>')).toString('hex'));
  out.set('sum:ids', JSON.stringify(await client.hGetAll('sum:ids')));
  return out;
}


/**
 * An average long enough to be written in pieces after the completing command (more than
 * 2^20 elements, see COMMANDS.md), then what the exchange does with it once announced: a copy
 * into another key. Returns the keys whose bytes must survive a restart or reach a replica.
 */
const LONG = 1.5 * 2 ** 20;
async function longAverage(client: Client): Promise<string[]> {
  await cmd(client, 'PL.ACCUM', 'lsum', 'lavg', 'a', '2', bytes(randomTensor(LONG, 21)), 'ROUND', '0');
  await cmd(client, 'PL.ACCUM', 'lsum', 'lavg', 'b', '2', bytes(randomTensor(LONG, 22)), 'ROUND', '0');
  await waitFor(async () => String(await client.get('lavg:round')) === '0', 10_000, 'the long average');
  await cmd(client, 'PL.ZEROS', 'lcopy', String(LONG));
  await cmd(client, 'PL.COPYRANGE', 'lcopy', '0', 'lavg', '0', String(LONG));
  return ['lavg', 'lavg:round', 'lcopy'];
}

/** Each key's length and digest (a failure prints lines, not megabytes). */
async function bytesOf(client: Client, keys: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const k of keys) {
    const b = await getBytes(client, k);
    out.set(k, b === null ? '<missing>' : `${b.length} bytes, sha256 ${createHash('sha256').update(b).digest('hex').slice(0, 16)}`);
  }
  return out;
}

const loaded = async (client: Client) => !/loading:1/.test(String(await client.sendCommand(['INFO', 'persistence'])));

describe('persistence', () => {
  it('an RDB snapshot keeps the tensors; a server without the module still GETs them', async () => {
    const dir = tempDir();
    const first = await startTracked({ dir });
    const keys = await round(first.client);
    const expected = await values(first.client, keys);
    const sums = await Promise.all(keys.filter((k) => k !== 'step').map((k) => first.client.sendCommand(['PL.CHECKSUM', k])));
    await first.client.sendCommand(['SAVE']);
    await stopAll(first.client, first.server);

    const withModule = await startTracked({ dir });
    expect(await values(withModule.client, keys)).toEqual(expected);
    expect(await Promise.all(keys.filter((k) => k !== 'step').map((k) => withModule.client.sendCommand(['PL.CHECKSUM', k])))).toEqual(sums);
    // the accumulation goes on where it stopped: the ids survived too
    expect(await withModule.client.sendCommand(['PL.ACCUM', 'half', 'havg', 'b', '2', bytes(f32(3)), 'OFFSET', '0', 'TOTAL', '6'])).toEqual([2, 2, 1]);
    await stopAll(withModule.client, withModule.server);

    const plain = await startTracked({ dir, loadModule: false });
    expect(await values(plain.client, keys)).toEqual(expected);
    await expect(plain.client.sendCommand(['PL.LEN', 'params'])).rejects.toThrow(/unknown command/i);
  });

  it('the AOF replays the module commands to the same bytes', async () => {
    const dir = tempDir();
    const first = await startTracked({ dir, config: { appendonly: 'yes', appendfsync: 'always' } });
    const keys = await round(first.client);
    const expected = await values(first.client, keys);
    await stopAll(first.client, first.server); // SIGTERM: no SAVE, the AOF is what is left

    const again = await startTracked({ dir, config: { appendonly: 'yes' } });
    await waitFor(async () => !/loading:1/.test(String(await again.client.sendCommand(['INFO', 'persistence']))), 5000, 'AOF load');
    expect(await values(again.client, keys)).toEqual(expected);
  });

  it('the AOF replays a long average whole before the commands that read it (a killed server)', async () => {
    // Timers do not fire while Redis loads: an average left to them was still unwritten
    // when the replayed copy read it, and the copy came back zeros.
    const dir = tempDir();
    const first = await startTracked({ dir, config: { appendonly: 'yes', appendfsync: 'always' } });
    const keys = await longAverage(first.client);
    const expected = await bytesOf(first.client, keys);
    await first.server.kill();

    const again = await startTracked({ dir, config: { appendonly: 'yes' } });
    await waitFor(() => loaded(again.client), 10_000, 'AOF load');
    expect(await bytesOf(again.client, keys)).toEqual(expected);
  });

  it('a snapshot taken while a long average is being written holds it whole, announced', async () => {
    const dir = tempDir();
    const first = await startTracked({ dir });
    const c = first.client;
    // Four pieces: the average takes four turns of the event loop after its completing command.
    const n = 3 * 2 ** 20 + 5;
    const [a, b] = [bytes(randomTensor(n, 21)), bytes(randomTensor(n, 22))];
    const bgsaveDone = async () => /rdb_bgsave_in_progress:0/.test(String(await c.sendCommand(['INFO', 'persistence'])));
    // The completing command, BGSAVE and a read of the announcement go in one write, so the
    // fork comes while the average is being written (the read says so). Not inside MULTI: a
    // BGSAVE there is only scheduled, for the server's next cron. A few tries, on new rounds,
    // in case the event loop ran ahead of the socket.
    let round = 0;
    for (; round < 5; round++) {
      await cmd(c, 'PL.ACCUM', 'lsum', 'lavg', 'a', '2', a, 'ROUND', String(round));
      const [, saving, announced] = await Promise.all([
        cmd(c, 'PL.ACCUM', 'lsum', 'lavg', 'b', '2', b, 'ROUND', String(round)),
        cmd<Buffer>(c, 'BGSAVE'),
        cmd<Buffer | null>(c, 'GET', 'lavg:round'),
      ]);
      expect(String(saving)).toBe('Background saving started');
      await waitFor(bgsaveDone, 20_000, 'BGSAVE');
      if (String(announced) !== String(round)) break;
    }
    expect(round, 'the fork never came while the average was being written').toBeLessThan(5);
    await waitFor(async () => String(await c.get('lavg:round')) === String(round), 10_000, 'the long average');
    const expected = await bytesOf(c, ['lavg', 'lavg:round']);
    await first.server.kill(); // no save at shutdown: the snapshot is what is left

    const again = await startTracked({ dir });
    await waitFor(() => loaded(again.client), 10_000, 'RDB load');
    expect(await bytesOf(again.client, ['lavg', 'lavg:round'])).toEqual(expected);
  });
});

// Redis 7 waits 5 s for more replicas before a diskless full sync by default.
const MASTER = { 'repl-diskless-sync-delay': '0' };

describe('replication', () => {
  it('a replica runs the same commands to the same bytes', async () => {
    const master = await startTracked({ config: MASTER });
    const replica = await startTracked({ config: { replicaof: `127.0.0.1 ${master.server.port}` } });
    await waitFor(async () => /master_link_status:up/.test(String(await replica.client.sendCommand(['INFO', 'replication']))), 10_000, 'replica link');

    const keys = await round(master.client);
    expect(await master.client.sendCommand(['WAIT', '1', '5000'])).toBe(1);
    const onMaster = await values(master.client, keys);
    expect(await values(replica.client, keys)).toEqual(onMaster);
    expect(await replica.client.sendCommand(['PL.CHECKSUM', 'params'])).toBe(await master.client.sendCommand(['PL.CHECKSUM', 'params']));

    // a refused command is not replicated; a read-only replica refuses writes
    await expect(master.client.sendCommand(['PL.ACCUM', 'sum', 'avg', 'late', '3', bytes(randomTensor(3001, 5))])).rejects.toThrow(/complete/);
    await expect(replica.client.sendCommand(['PL.SCALE', 'params', '2'])).rejects.toThrow(/READONLY/);
    expect(await replica.client.sendCommand(['PL.LEN', 'params'])).toBe(3001);
    expect(await master.client.sendCommand(['WAIT', '1', '5000'])).toBe(1);
    expect(await values(replica.client, keys)).toEqual(onMaster);
  });

  it('a replica writes a long average whole before the commands that read it', async () => {
    const master = await startTracked({ config: MASTER });
    const replica = await startTracked({ config: { replicaof: `127.0.0.1 ${master.server.port}` } });
    await waitFor(async () => /master_link_status:up/.test(String(await replica.client.sendCommand(['INFO', 'replication']))), 10_000, 'replica link');
    const keys = await longAverage(master.client);
    expect(await master.client.sendCommand(['WAIT', '1', '10000'])).toBe(1);
    expect(await bytesOf(replica.client, keys)).toEqual(await bytesOf(master.client, keys));
  });

  it('a replica that syncs later gets the tensors in the RDB transfer', async () => {
    const master = await startTracked({ config: MASTER });
    const keys = await round(master.client);
    const onMaster = await values(master.client, keys);
    const replica = await startTracked({ config: { replicaof: `127.0.0.1 ${master.server.port}` } });
    await waitFor(async () => /master_link_status:up/.test(String(await replica.client.sendCommand(['INFO', 'replication']))), 10_000, 'replica link');
    expect(await values(replica.client, keys)).toEqual(onMaster);
    const late = await connect(replica.server);
    expect(await late.ping()).toBe('PONG');
    await late.close();
  });
});
