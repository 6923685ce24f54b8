import { HttpPlatform } from './http/index.ts';
import { LocalPlatform } from './local/local-platform.ts';
import type { FunctionPlatform } from './platform.ts';

export interface PlatformChoice {
  platform: 'local' | 'http' | 'aws-lambda';
  /** local: worker threads (default: cores). */
  workers?: number;
  /** http: gateway base URL or `{name}` template. */
  functionUrl?: string;
  /** http: every call gets an instance of its own, so slow calls may be hedged (HttpPlatformOptions.elastic). */
  elastic?: boolean;
  /** aws-lambda: region and optional endpoint (emulators). */
  region?: string;
  endpoint?: string;
  /** Memory billed per invocation, MB. */
  memoryMb?: number;
  /** Per-invocation timeout, ms. */
  timeoutMs?: number;
  /** local: the functions' Redis credentials, given to the function workers' environment. */
  redisCredentials?: { username?: string; password: string };
}

/** The platform a command was asked for, with a clear error for what is missing. */
export async function createPlatform(c: PlatformChoice): Promise<FunctionPlatform> {
  switch (c.platform) {
    case 'local': {
      const p = new LocalPlatform({ workers: c.workers, memoryMb: c.memoryMb, timeoutMs: c.timeoutMs, redisCredentials: c.redisCredentials });
      await p.warm();
      return p;
    }
    case 'http':
      if (!c.functionUrl) throw new Error('--platform http needs --function-url (e.g. http://host:8080, as served by `peerless function serve`)');
      return new HttpPlatform({ url: c.functionUrl, memoryMb: c.memoryMb, timeoutMs: c.timeoutMs, elastic: c.elastic });
    case 'aws-lambda': {
      // The AWS SDK loads only for the runs that use it (it is the heaviest import here).
      const { AwsLambdaPlatform } = await import('./aws-lambda/index.ts');
      return new AwsLambdaPlatform({ region: c.region, endpoint: c.endpoint, memoryMb: c.memoryMb, timeoutMs: c.timeoutMs });
    }
    default:
      throw new Error(`unknown platform "${String(c.platform)}": expected local, http or aws-lambda`);
  }
}
