import { startRedisServer } from './src/cluster/redis-server.ts';
import { stopNetwork } from './src/cli/commands/stop.ts';
import { connectRedis, closeRedis } from './src/tensor/redis-client.ts';
import { makeLab } from './test/faults/net-lab.ts';
import { NETWORK_FLAGS, spawnPeer, untilRoundOf } from './test/training/peer-process.ts';
for (let run = 0; run < 4; run++) {
  const lab = await makeLab(3, { latencyMs: 20, stallMs: 200, stallRate: 0.01, bandwidth: 20e6, seed: 11 });
  const t0 = Date.now();
  const lines: string[] = [];
  const log = (m: string) => lines.push(`${((Date.now() - t0) / 1000).toFixed(1)}s ${m}`);
  const peers: ReturnType<typeof spawnPeer>[] = [];
  const servers = await Promise.all(lab.hosts.map((h) => startRedisServer({ host: h.address, port: 6379, password: 's', wrapper: h.wrapper })));
  const clients = await Promise.all(servers.map((s) => connectRedis({ url: s.url, password: 's' })));
  try {
    const adv = await Promise.all(lab.hosts.map(async (h) => `redis://${lab.gateway}:${await lab.proxy(h.address, 6379)}`));
    for (const i of [0, 1, 2]) {
      peers.push(spawnPeer(`p${i}`, ['--redis', servers[i]!.url, '--advertise', adv[i]!, '--password', 's', '--shard', `${i}/3`, ...(i === 0 ? [...NETWORK_FLAGS, '--rounds', '100000', '--deadline', '6000'] : ['--bootstrap', adv[0]!])], {}, lab.hosts[i]!.wrapper));
      peers[i]!.child.stderr!.on('data', (d) => { for (const l of String(d).trim().split('\n')) log(`[p${i}] ${l}`); });
    }
    const from = Math.max(...await Promise.all([1, 2].map((i) => peers[i]!.line(/joined through/).then((x) => Number(/from round (\d+)/.exec(x)![1])))));
    await untilRoundOf(clients[2]!, from + 2, peers[2], 60000);
    lab.partition(2); log('partitioned');
    await peers[0]!.line(/p2 dropped from round/);
    const leftAt = JSON.parse(String(await clients[0]!.hGet('peerless:members', 'p2'))).leftAt;
    await untilRoundOf(clients[0]!, leftAt + 2, peers[0], 60000);
    const mark = peers[2]!.stderr().length;
    lab.heal(2); log('healed');
    const rejoined = await new Promise<number>((res) => { const t = setInterval(() => { const m = /joined through \S+ from round (\d+)/.exec(peers[2]!.stderr().slice(mark)); if (m) { clearInterval(t); res(Number(m[1])); } }, 50); });
    await untilRoundOf(clients[2]!, rejoined + 2, peers[2], 60000);
    log(`stop requested (p2 at ${rejoined + 2})`);
    await stopNetwork(servers[0]!.url, 's', undefined, true);
    const o = await Promise.all(peers.map((p) => p.outcome));
    log(JSON.stringify(o.map((x) => [x?.state, x?.rounds, x?.checksum])));
    const ok = o.every((x) => x?.state === 'done');
    console.log(`run ${run}: ${ok ? 'ok' : 'FAILED'}`);
    if (!ok) console.log(lines.join('\n'));
  } catch (e) { console.log(`run ${run} ERR ${(e as Error).message.slice(0, 200)}\n${lines.join('\n')}`); }
  finally { for (const p of peers) p.kill(); await Promise.allSettled(clients.map(closeRedis)); await Promise.allSettled(servers.map((s) => s.stop())); await lab.close(); }
}
process.exit(0);
