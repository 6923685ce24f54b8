import { bytes, cmd, randomTensor, rng, type Arg, type Client } from './helpers.ts';

/**
 * A fuzzer for the module's commands: random garbage and mutations of valid commands (an
 * argument replaced, dropped or repeated, a blob's bytes flipped), against a small model in
 * the database. Keys the commands never name ("bystanders") must keep their bytes, errors
 * must be the module's one-line errors, and the server must keep answering.
 * Used by the suite (a few thousand commands) and by `npm run fuzz` (100,000 and more).
 */
export interface FuzzReport {
  commands: number;
  ok: number;
  errors: number;
  /** Error lines that were not the module's own or Redis's arity error (must stay empty). */
  strange: string[];
  bystandersIntact: boolean;
  usedMemoryBytes: number;
}

const T16 = bytes(randomTensor(16, 1));
const T8 = bytes(randomTensor(8, 2));
const withValue = (x: number) => { const t = randomTensor(16, 3); t[9] = x; return bytes(t); };
const BLOBS = [T16, T8, withValue(NaN), withValue(Infinity), withValue(2 ** 20), Buffer.alloc(3), Buffer.alloc(0)];

/** The model and the state the commands work on; bystanders are never named by a command. */
async function populate(client: Client): Promise<Map<string, Buffer>> {
  await client.flushAll();
  for (const k of ['fz:p', 'fz:g', 'fz:g2']) await cmd(client, 'PL.SET', k, T16);
  await cmd(client, 'PL.SET', 'fz:small', T8);
  await client.hSet('fz:h', 'f', 'v');
  await cmd(client, 'PL.ACCUM', 'fz:sum', 'fz:avg', 'b0', '3', T16, 'ROUND', '1');
  const bystanders = new Map<string, Buffer>([['by:params', bytes(randomTensor(1000, 9))], ['by:velocity', bytes(randomTensor(1000, 10))]]);
  for (const [k, v] of bystanders) await cmd(client, 'PL.SET', k, v);
  await client.hSet('by:members', { p0: '{"id":"p0"}', p1: '{"id":"p1"}' });
  return bystanders;
}

/** Stands for the fuzzed server's own port in a template. */
const SELF_PORT = '<self-port>';
/** Valid commands on the fuzzed keys, to be mutated. */
const TEMPLATES: Arg[][] = [
  ['PL.ACCUM', 'fz:sum', 'fz:avg', 'b1', '3', T16, 'ROUND', '1'],
  ['PL.ACCUM', 'fz:sum', 'fz:avg', 'b2', '3', T8, 'OFFSET', '8', 'TOTAL', '16', 'ROUND', '1'],
  ['PL.CLOSE', 'fz:sum', 'fz:avg', 'ROUND', '1'],
  ['PL.PUSH', 'fz:psum', 'fz:pavg', 'b1', 'a1', '3', '16', '8', '0', T8, 'ROUND', '1'],
  ['PL.PUSH', 'fz:psum', 'fz:pavg', 'b1', 'a2', '3', '16', '8', '8', T8, 'ROUND', '1', 'SLOTS', '2'],
  ['PL.PUSH', 'fz:sum', 'fz:avg', 'b3', 'a1', '3', '16', '8', '8', T8, 'ROUND', '1'],
  ['PL.CLOSE', 'fz:psum', 'fz:pavg', 'ROUND', '1'],
  // An avg named like one of its sum's own keys (a staged slot's record here): each of these,
  // run while an attempt is staged, crashed the server before it was refused.
  ['PL.CLOSE', 'fz:psum', 'fz:psum:slot:0:got', 'ROUND', '1'],
  ['PL.PUSH', 'fz:psum', 'fz:psum:slot:0:got', 'b2', 'a1', '3', '16', '16', '0', T16, 'ROUND', '1'],
  ['PL.ACCUM', 'fz:psum', 'fz:psum:round', 'b3', '3', T16, 'ROUND', '1'],
  ['PL.SGD', 'fz:p', 'fz:g', 'fz:v', '0.1', '0.9', 'WD', '0.001'],
  ['PL.ADAM', 'fz:p', 'fz:g', 'fz:m', 'fz:v2', 'fz:step', '0.001', 'BETA1', '0.9'],
  ['PL.AGGREGATE', 'fz:agg', 'MEAN', '2', 'fz:g', 'fz:g2'],
  ['PL.AGGREGATE', 'fz:agg', 'RANGE', '1', '2', 'MEAN', '2', 'fz:g', 'fz:g2', 'OFFSETS', '0', '1'],
  ['PL.AGGREGATE', 'fz:agg', 'TRIMMED', '1', '3', 'fz:g', 'fz:g2', 'fz:p'],
  ['PL.AGGREGATE', 'fz:agg', 'KRUM', '0', '1', '3', 'fz:g', 'fz:g2', 'fz:p'],
  ['PL.COPYRANGE', 'fz:p', '0', 'fz:g', '8', '8'],
  ['PL.SETRANGE', 'fz:p', '8', T8],
  ['PL.GETRANGE', 'fz:p', '0', '16'],
  ['PL.ZEROS', 'fz:z', '16'],
  ['PL.SCALE', 'fz:g2', '0.5'],
  ['PL.CHECKSUM', 'fz:p'],
  ['PL.LEN', 'fz:small'],
  ['PL.SET', 'fz:g', T16],
  // port 1 on loopback: nothing listens, so a valid send fails at once ("cannot connect")
  ['PL.SEND', 'fz:p', '0', '16', '127.0.0.1', '1', 'fz:g', '0', 'TIMEOUT', '200'],
  // the server itself (SELF_PORT is its port): the send's whole path on its own event loop
  ['PL.SEND', 'fz:p', '0', '16', '127.0.0.1', SELF_PORT, 'fz:g2', '0', 'CHUNK', '4', 'TIMEOUT', '2000'],
];
const COMMANDS = [...new Set(TEMPLATES.map((t) => String(t[0])))];
const KEYS = ['fz:p', 'fz:g', 'fz:g2', 'fz:small', 'fz:h', 'fz:sum', 'fz:avg', 'fz:sum:ids', 'fz:sum:round', 'fz:v', 'fz:m', 'fz:step', 'fz:agg', 'fz:z', 'fz:psum', 'fz:pavg', 'fz:psum:ids', 'fz:psum:slot:0', 'fz:psum:slot:0:got', 'fz:psum:gone', 'fz:sum:slot:0', 'fz:sum:blocks', 'fz:psum:blocks', ''];
const WORDS = ['MEAN', 'MEDIAN', 'TRIMMED', 'KRUM', 'OFFSET', 'TOTAL', 'ROUND', 'NESTEROV', 'WD', 'DAMPENING', 'BETA1', 'BETA2', 'EPS', 'DECOUPLED', 'SLOTS', 'AUTH', 'CHUNK', 'TIMEOUT'];
// Small numbers only among the valid ones: a valid ZEROS must not allocate much.
const NUMBERS = ['-1', '0', '1', '2', '3', '7', '8', '16', '1000', '0.5', '-0', '1e-45', 'nan', 'inf', '-inf', '1e400', String(2 ** 27 + 1), String(2 ** 25 + 1), '2147483648', '9223372036854775807', '-9223372036854775808', '99999999999999999999', '', ' 1', '0x10'];

export async function fuzzModule(client: Client, count: number, seed: number): Promise<FuzzReport> {
  const bystanders = await populate(client);
  const membersBefore = await client.hGetAll('by:members');
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const randomBytes = () => Buffer.from(Array.from({ length: Math.floor(r() * 70) }, () => Math.floor(r() * 256)));
  const value = (): Arg => {
    const c = r();
    if (c < 0.3) return pick(KEYS);
    if (c < 0.55) return pick(NUMBERS);
    if (c < 0.7) return pick(WORDS);
    if (c < 0.85) return pick(BLOBS);
    return randomBytes();
  };
  const mutate = (t: Arg[]): Arg[] => {
    const args = [...t];
    const i = 1 + Math.floor(r() * (args.length - 1));
    const m = r();
    if (m < 0.4) args[i] = value();
    else if (m < 0.55) args.splice(i, 1);
    else if (m < 0.7) args.splice(i, 0, args[i]);
    else if (m < 0.85 && Buffer.isBuffer(args[i])) { const b = Buffer.from(args[i] as Buffer); if (b.length) b[Math.floor(r() * b.length)] ^= 1 << Math.floor(r() * 8); args[i] = b; }
    else args.push(value());
    return args;
  };
  const report: FuzzReport = { commands: 0, ok: 0, errors: 0, strange: [], bystandersIntact: true, usedMemoryBytes: 0 };
  const selfPort = String((await client.configGet('port')).port);
  const templates = TEMPLATES.map((t) => t.map((a) => (a === SELF_PORT ? selfPort : a)));
  for (let i = 0; i < count; i++) {
    const c = r();
    const made = c < 0.5 ? mutate(pick(templates)) : c < 0.6 ? [...pick(templates)] : [pick(COMMANDS), ...Array.from({ length: Math.floor(r() * 11) }, value)];
    // One in ten is asked where its keys are instead (what ACLs and cluster routing ask first,
    // before any arity check): the module's key finder sees every malformed shape too.
    const getkeys = r() < 0.1;
    const args = getkeys ? ['COMMAND', 'GETKEYS', ...made] : made;
    report.commands++;
    try {
      await client.sendCommand(args);
      report.ok++;
    } catch (err) {
      report.errors++;
      const msg = (err as Error).message;
      const expected = getkeys ? /^ERR (Invalid arguments specified|The command has no key arguments|wrong number of arguments|Invalid command specified)/ : /^ERR (peerless: |wrong number of arguments)/;
      if (!expected.test(msg) && report.strange.length < 20) report.strange.push(msg);
    }
    // Now and then the state goes back to a fresh round, so valid commands keep reaching deep paths.
    if (i % 500 === 499) await cmd(client, 'DEL', 'fz:sum:ids', 'fz:psum:ids');
  }
  for (const [k, v] of bystanders) {
    const now = await cmd<Buffer | null>(client, 'GET', k);
    if (!now || !now.equals(v)) report.bystandersIntact = false;
  }
  if (JSON.stringify(await client.hGetAll('by:members')) !== JSON.stringify(membersBefore)) report.bystandersIntact = false;
  const info = String(await client.sendCommand(['INFO', 'memory']));
  report.usedMemoryBytes = Number(/used_memory:(\d+)/.exec(info)![1]);
  return report;
}
