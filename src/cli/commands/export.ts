import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { exportFromRedis, type ExportResult } from '../../cluster/export-network.ts';
import { startRedisServer } from '../../cluster/redis-server.ts';
import { credentialsFor } from '../../peer/net/access.ts';
import { closeRedis, connectRedis } from '../../tensor/redis-client.ts';

export interface ExportCliOptions {
  redis?: string;
  password?: string;
  dataDir?: string;
  json?: boolean;
}

/**
 * `peerless export DIR`: the current model of a network, from a live peer's Redis (--redis) or
 * from a stopped run's data directory (--data-dir: its first peer's Redis is started on the
 * saved state, read, and stopped).
 */
export async function exportNetwork(dir: string, o: ExportCliOptions): Promise<ExportResult> {
  if (Boolean(o.redis) === Boolean(o.dataDir)) throw new Error('export needs one of --redis URL (a live peer) or --data-dir D (a stopped run\'s, from train --data-dir)');
  let r: ExportResult;
  if (o.redis) {
    // As the read-only observer: the network secret opens no Redis as its owner.
    const client = await connectRedis({ url: o.redis, ...(o.password ? credentialsFor('observer', o.password) : {}) }).catch((err: Error) => {
      throw new Error(`${o.redis} does not answer: ${err.message}`);
    });
    try {
      r = await exportFromRedis(client, dir);
    } finally {
      await closeRedis(client);
    }
  } else {
    const state = join(o.dataDir!, 'peer-0');
    if (!existsSync(state)) throw new Error(`${o.dataDir}: no peer-0 folder: not the --data-dir of a train run`);
    // The run's own AOF; the server is ours, for the time of the read.
    const server = await startRedisServer({ dir: state, config: { appendonly: 'yes', appendfsync: 'no' } });
    try {
      const client = await connectRedis({ url: server.url });
      try {
        r = await exportFromRedis(client, dir);
      } finally {
        await closeRedis(client);
      }
    } finally {
      await server.stop();
    }
  }
  if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  else process.stdout.write(`exported the model after round ${r.round} (checksum ${r.checksum}): ${r.files.join(', ')}\n`);
  return r;
}
