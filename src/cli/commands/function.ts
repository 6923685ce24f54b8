import { packageFunction } from '../../functions/package.ts';
import { serveFunctions } from '../../platform/http/index.ts';
import { formatBytes } from '../format.ts';

/** `peerless function serve`: hosts the handlers until SIGINT/SIGTERM. */
export async function functionServe(port: number, host: string): Promise<void> {
  const server = await serveFunctions({ port, host });
  process.stderr.write(`peerless functions listening on ${server.url} (POST /function/gradient, /function/evaluate; GET /healthz)\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
}

/** `peerless function package`: the Lambda zip (wasm) or image build context (native), and how to deploy it. */
export async function functionPackage(out: string, backend: string, json: boolean): Promise<void> {
  if (backend !== 'wasm' && backend !== 'native') throw new Error(`--backend: "${backend}" is not wasm or native`);
  const r = await packageFunction(out, { backend });
  if (json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  else process.stdout.write(`Wrote ${r.path} (${formatBytes(r.bytes)})\n\n${r.instructions}\n`);
}
