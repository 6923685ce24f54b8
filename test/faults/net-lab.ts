/**
 * Test hosts on one machine: a network namespace per host, each with one veth into a bridge
 * in the test's own namespace, and a seeded userspace TCP proxy on the bridge that shapes what
 * crosses it (this kernel has no netem qdisc). Made and removed by the tests themselves; needs
 * root and iproute2 (`available()` says why not, for a printed skip).
 *
 *   host i: namespace <tag>h<i>, eth0 = 10.<net>.0.<11+i>/24
 *   bridge: <tag>br in the test's namespace, 10.<net>.0.1/24, where the proxies listen
 *   partition(i): host i's veth goes down (its connections stall); heal(i): up again.
 */
import { execFileSync } from 'node:child_process';
import { createServer, Socket, type Server } from 'node:net';
import { mulberry32 } from '../../src/data/random.ts';

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Why namespaces cannot be made here, or null when they can. */
export function available(): string | null {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const probe = `plprobe${process.pid}`;
  try {
    ip(['netns', 'add', probe]);
    ip(['netns', 'del', probe]);
    return null;
  } catch (err) {
    return `ip netns add failed: ${(err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message}`;
  }
}

export interface Shaping {
  /** Added to every chunk in each direction, ms. */
  latencyMs: number;
  /** A chunk is held this much longer with probability `stallRate`: a lost segment's retransmission. */
  stallMs: number;
  stallRate: number;
  /** Bytes per second in each direction of a connection. */
  bandwidth: number;
  seed: number;
}

export interface Host {
  index: number;
  ns: string;
  address: string;
  /** Runs a command on this host. */
  wrapper: string[];
}

export interface Lab {
  hosts: Host[];
  /** The bridge's address, where the proxies listen. */
  gateway: string;
  /** A shaping proxy on the bridge to `address:port`; returns the port it listens on. */
  proxy(address: string, port: number): Promise<number>;
  partition(i: number): void;
  heal(i: number): void;
  /** Bytes that crossed the proxies, and chunks held as lost. */
  stats(): { bytes: number; stalls: number };
  close(): Promise<void>;
}

export async function makeLab(n: number, shaping: Shaping): Promise<Lab> {
  const tag = `pl${(process.pid % 9000) + 1000}`;
  const net = 100 + (process.pid % 100);
  const gateway = `10.${net}.0.1`;
  const bridge = `${tag}br`;
  const made: string[] = [];
  const veths: string[] = [];
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  const rand = mulberry32(shaping.seed);
  let bytes = 0, stalls = 0;

  const teardown = () => {
    for (const ns of made) { try { ip(['netns', 'del', ns]); } catch { /* already gone */ } }
    for (const v of veths) { try { ip(['link', 'del', v]); } catch { /* went with its namespace */ } }
    try { ip(['link', 'del', bridge]); } catch { /* never made */ }
  };
  teardown();
  try {
    ip(['link', 'add', bridge, 'type', 'bridge']);
    ip(['addr', 'add', `${gateway}/24`, 'dev', bridge]);
    ip(['link', 'set', bridge, 'up']);
    const hosts: Host[] = [];
    for (let i = 0; i < n; i++) {
      const ns = `${tag}h${i}`, outer = `${tag}v${i}`, inner = `${tag}i${i}`, address = `10.${net}.0.${11 + i}`;
      ip(['netns', 'add', ns]);
      made.push(ns);
      ip(['link', 'add', outer, 'type', 'veth', 'peer', 'name', inner]);
      veths.push(outer);
      ip(['link', 'set', inner, 'netns', ns]);
      ip(['link', 'set', outer, 'master', bridge]);
      ip(['link', 'set', outer, 'up']);
      ip(['-n', ns, 'link', 'set', inner, 'name', 'eth0']);
      ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      hosts.push({ index: i, ns, address, wrapper: ['ip', 'netns', 'exec', ns] });
    }

    /**
     * One direction of a connection: each chunk released after its shaped delay, strictly in
     * order. One timer drains a FIFO: a timer per chunk could fire out of order (timers count
     * from the event loop's cached clock, the release times from Date.now()), and a reordered
     * byte stream is no network at all: RESP replies came apart and a client waited forever.
     */
    const shape = (from: Socket, to: Socket) => {
      const fifo: { chunk: Buffer; at: number }[] = [];
      let releaseAt = 0, queued = 0, ended = false;
      let timer: NodeJS.Timeout | undefined;
      const drain = () => {
        timer = undefined;
        const now = Date.now();
        while (fifo.length > 0 && fifo[0]!.at <= now) {
          const { chunk } = fifo.shift()!;
          if (!to.destroyed) to.write(chunk);
          queued -= chunk.length;
        }
        if (queued <= 4 << 20) from.resume();
        if (fifo.length > 0) timer = setTimeout(drain, fifo[0]!.at - now);
        else if (ended) to.end();
      };
      from.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        const now = Date.now();
        let at = Math.max(now + shaping.latencyMs, releaseAt) + (chunk.length / shaping.bandwidth) * 1000;
        if (rand() < shaping.stallRate) { at += shaping.stallMs; stalls++; }
        releaseAt = at;
        fifo.push({ chunk, at });
        queued += chunk.length;
        if (queued > 8 << 20) from.pause();
        timer ??= setTimeout(drain, at - now);
      });
      from.on('end', () => {
        ended = true;
        if (timer === undefined && fifo.length === 0) to.end();
      });
    };

    return {
      hosts,
      gateway,
      async proxy(address, port) {
        const server = createServer((client) => {
          const upstream = new Socket();
          for (const s of [client, upstream]) {
            sockets.add(s);
            s.on('close', () => sockets.delete(s));
            s.on('error', () => { client.destroy(); upstream.destroy(); });
          }
          upstream.connect(port, address);
          shape(client, upstream);
          shape(upstream, client);
        });
        servers.push(server);
        await new Promise<void>((ok) => server.listen(0, gateway, () => ok()));
        return (server.address() as { port: number }).port;
      },
      partition: (i) => ip(['link', 'set', `${tag}v${i}`, 'down']),
      heal: (i) => ip(['link', 'set', `${tag}v${i}`, 'up']),
      stats: () => ({ bytes, stalls }),
      async close() {
        for (const s of sockets) s.destroy();
        await Promise.all(servers.map((s) => new Promise<void>((ok) => s.close(() => ok()))));
        teardown();
      },
    };
  } catch (err) {
    teardown();
    throw err;
  }
}
