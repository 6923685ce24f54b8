/**
 * A throwaway certificate authority and a certificate for 127.0.0.1, for a local run over
 * TLS (`train --tls`): made with the openssl command, valid one day, in a directory the
 * caller removes. Remote deployments bring their own certificates (Redis's tls-* options;
 * clients trust the CA named by PEERLESS_TLS_CA).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TlsFiles {
  /** PEM files: the CA's certificate, and the server's certificate and key. */
  ca: string;
  cert: string;
  key: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('--tls needs the openssl command (Debian: apt-get install openssl)');
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString().trim().split('\n').pop() ?? e.message}`);
  }
}

/** Creates the CA and 127.0.0.1's certificate in `dir`. */
export function makeLocalTls(dir: string, names = ['IP:127.0.0.1', 'DNS:localhost']): TlsFiles {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=peerless local CA'], dir);
  openssl(['req', ...ec, '-keyout', 'redis.key', '-out', 'redis.csr', '-subj', '/CN=127.0.0.1'], dir);
  writeFileSync(join(dir, 'san.ext'), `subjectAltName=${names.join(',')}\n`);
  openssl(['x509', '-req', '-in', 'redis.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'redis.crt', '-days', '1', '-extfile', 'san.ext'], dir);
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'redis.crt'), key: join(dir, 'redis.key') };
}
