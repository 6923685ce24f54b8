import { KILLED, KILL_PHASES, runKillBench, VICTIMS, type Killed, type KillPhase, type KillReport, type Victim } from '../../../bench/kills.ts';
import { formatMs, table } from '../format.ts';
import { progressBar } from '../progress.ts';

export interface KillsCliOptions {
  json?: boolean;
  deadline?: number;
  phases?: string;
  victims?: string;
  killed?: string;
}

const list = <T extends string>(s: string | undefined): T[] | undefined => (s === undefined ? undefined : s.split(',').map((x) => x.trim()).filter(Boolean) as T[]);

/** `peerless bench kills`: the time survivors lose when a peer or its Redis is killed at each phase. */
export async function benchKills(o: KillsCliOptions): Promise<KillReport> {
  const bar = progressBar(!o.json, 'kills');
  const r = await runKillBench({
    ...(o.deadline ? { deadlineMs: o.deadline } : {}),
    ...(o.phases !== undefined ? { phases: list<KillPhase>(o.phases) } : {}),
    ...(o.victims !== undefined ? { victims: list<Victim>(o.victims) } : {}),
    ...(o.killed !== undefined ? { killed: list<Killed>(o.killed) } : {}),
    onProgress: (d, t, w) => bar.update(d, t, w),
  });
  bar.stop();
  if (o.json) {
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return r;
  }
  process.stdout.write(`${[
    `Kills: 3 peers (tiny synthetic CNN, 1 batch per round), deadline ${formatMs(r.deadlineMs)}; the victim stops before a phase, then its process or its redis-server is SIGKILLed.`,
    'Lost: the survivors\' rounds from the kill\'s to three after it, less four clean rounds.',
    '',
    table(['victim', 'killed', 'before', 'round', 'clean round', 'lost', 'lost / deadline', 'survivors identical'],
      r.rows.map((x) => [`${x.victim} (${x.peer})`, x.killed, x.phase, String(x.round), formatMs(x.cleanRoundMs), formatMs(x.lostMs), `${x.lostDeadlines.toFixed(2)}x`, x.identical ? 'yes' : 'NO'])),
    '',
    `worst: ${r.worst.toFixed(2)} deadlines lost (target: at most 1)`,
    `(phases: ${KILL_PHASES.join(', ')}; victims: ${VICTIMS.join(', ')}; killed: ${KILLED.join(', ')})`,
  ].join('\n')}\n`);
  return r;
}
