/**
 * `peerless function package`: bundles the Lambda entry with esbuild into one ESM file and
 * zips it with the TF.js wasm binaries, ready for `aws lambda create-function` (backend wasm),
 * or writes a container-image build context around the same files with the native addon's
 * sources, built against oneDNN inside the image (backend native, packaging/image.ts).
 *
 * Where the wasm files go: src/model/backend.ts locates them with
 * `require.resolve('@tensorflow/tfjs-backend-wasm/package.json')` relative to the running
 * module. In the bundle that module is lambda-entry.mjs, so the zip carries a stub package
 * at node_modules/@tensorflow/tfjs-backend-wasm/ (package.json + dist/*.wasm): Node's
 * resolution from /var/task finds it, and no environment variable is needed.
 */
import { build } from 'esbuild';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ONEDNN_VERSION, writeImageContext } from './packaging/image.ts';
import { LAMBDA_RUNTIME, samTemplate, serverlessYml, type LambdaArch } from './packaging/templates.ts';
import { createZip, type ZipEntry } from './packaging/zip.ts';

export interface PackageOptions {
  /** Memory for the suggested create-function command, MB (default 2048: wasm + model). */
  memoryMb?: number;
  /** Timeout for the suggested command, seconds (default 900, Lambda's maximum). */
  timeoutSec?: number;
  /** Lambda function names in the instructions (default peerless-gradient / peerless-evaluate). */
  functionNames?: { gradient: string; evaluate: string };
  /** Minify the bundle (default true: smaller zip, faster cold start). */
  minify?: boolean;
  /**
   * wasm (default): a zip for Lambda's Node.js runtime. native: a container-image build context
   * (Dockerfile on the official Lambda Node.js 20 image, oneDNN and the addon built inside).
   */
  backend?: 'wasm' | 'native';
  /** The functions' architecture in the templates (default x86_64; the wasm zip runs on both). */
  arch?: LambdaArch;
  /** Subnets and security groups that reach the peers' Redis, when the functions run in a VPC. */
  vpc?: { subnetIds: string[]; securityGroupIds: string[] };
}

export interface PackageResult {
  backend: 'wasm' | 'native';
  /** The zip (wasm) or the build context's directory (native). */
  path: string;
  bytes: number;
  /** Shell commands and notes for deploying it. */
  instructions: string;
  /** The SAM template and the Serverless Framework service written beside it. */
  templates: string[];
}

export const BUNDLE_FILE = 'lambda-entry.mjs';
export const LAMBDA_HANDLER = 'lambda-entry.handler';
const WASM_PKG = '@tensorflow/tfjs-backend-wasm';
// Threads are off in Node, so the threaded build is never loaded.
const WASM_FILES = ['tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm.wasm'];

// An ESM bundle has no require/__dirname, which the CommonJS parts of TF.js (emscripten's
// loader) use: define them from import.meta.url. Unusual local names avoid clashes.
const BANNER = [
  "import { createRequire as __plCreateRequire } from 'node:module';",
  "import { fileURLToPath as __plFileURLToPath } from 'node:url';",
  "import { dirname as __plDirname } from 'node:path';",
  'const require = __plCreateRequire(import.meta.url);',
  'const __filename = __plFileURLToPath(import.meta.url);',
  'const __dirname = __plDirname(__filename);',
].join('\n');

export async function packageFunction(outDir: string, opts: PackageOptions = {}): Promise<PackageResult> {
  const out = resolve(outDir);
  await mkdir(out, { recursive: true });
  if (opts.vpc && (opts.vpc.subnetIds.length === 0 || opts.vpc.securityGroupIds.length === 0)) {
    throw new Error('function package: a VPC needs both --subnets and --security-groups (the functions reach the peers\' Redis through them)');
  }
  const entries = await functionFiles(opts);
  const templates = async (backend: 'wasm' | 'native') => {
    const t = {
      backend, arch: opts.arch ?? 'x86_64', memoryMb: opts.memoryMb ?? 2048, timeoutSec: opts.timeoutSec ?? 900,
      functionNames: opts.functionNames ?? { gradient: 'peerless-gradient', evaluate: 'peerless-evaluate' },
      handler: LAMBDA_HANDLER, artifact: ZIP_FILE, ...(opts.vpc ? { vpc: opts.vpc } : {}),
    };
    const files = [join(out, 'template.yaml'), join(out, 'serverless.yml')];
    await writeFile(files[0]!, samTemplate(t));
    await writeFile(files[1]!, serverlessYml(t));
    return files;
  };
  if (opts.backend === 'native') {
    const context = join(out, 'peerless-native-image');
    const bytes = await writeImageContext(context, entries);
    return { backend: 'native', path: context, bytes, instructions: imageInstructions(context, opts), templates: await templates('native') };
  }
  const zip = createZip(entries);
  const zipPath = join(out, ZIP_FILE);
  await rm(zipPath, { force: true });
  await writeFile(zipPath, zip);
  return { backend: 'wasm', path: zipPath, bytes: zip.length, instructions: instructions(zipPath, zip.length, opts), templates: await templates('wasm') };
}

/** The zip's name, beside the templates that name it. */
const ZIP_FILE = 'peerless-function.zip';

/** The function's files: the bundled entry and the wasm binaries where it looks for them. */
async function functionFiles(opts: PackageOptions): Promise<ZipEntry[]> {
  const entry = entryPoint();
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    write: false,
    outfile: BUNDLE_FILE,
    minify: opts.minify ?? true,
    keepNames: true, // error messages name real classes and functions
    // TF.js registers backends, kernels and gradients by side-effect imports that its
    // package.json "sideEffects" lists leave out for the Node builds: honour none of it.
    ignoreAnnotations: true,
    legalComments: 'none',
    banner: { js: BANNER },
    // Optional, native, found at run time by a variable import: never bundled.
    external: ['@tensorflow/tfjs-node'],
    logLevel: 'silent',
  }).catch((err: Error) => {
    throw new Error(`function package: esbuild failed on ${entry}: ${err.message.split('\n').slice(0, 4).join(' | ')}`);
  });
  const bundle = result.outputFiles.find((f) => f.path.endsWith(BUNDLE_FILE));
  if (!bundle) throw new Error('function package: esbuild produced no bundle');

  const entries: ZipEntry[] = [{ path: BUNDLE_FILE, data: Buffer.from(bundle.contents) }];
  const wasmDir = wasmDist();
  const pkg = JSON.parse(await readFile(join(wasmDir, '..', 'package.json'), 'utf8')) as { version: string };
  entries.push({
    path: `node_modules/${WASM_PKG}/package.json`,
    data: Buffer.from(JSON.stringify({ name: WASM_PKG, version: pkg.version, private: true }) + '\n'),
  });
  for (const f of WASM_FILES) {
    entries.push({ path: `node_modules/${WASM_PKG}/dist/${f}`, data: await readFile(join(wasmDir, f)) });
  }
  return entries;
}

/** lambda-entry.ts when running from source (tsx, vitest), lambda-entry.js from a tsc build. */
function entryPoint(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const f of ['lambda-entry.ts', 'lambda-entry.js']) {
    const p = join(here, f);
    if (existsSync(p)) return p;
  }
  throw new Error(`function package: no lambda-entry.ts or .js in ${here}`);
}

function wasmDist(): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve(`${WASM_PKG}/package.json`)), 'dist');
  } catch {
    throw new Error(`function package: ${WASM_PKG} is not installed (npm install)`);
  }
}

function instructions(zipPath: string, bytes: number, opts: PackageOptions): string {
  const memory = opts.memoryMb ?? 2048;
  const timeout = opts.timeoutSec ?? 900;
  const names = opts.functionNames ?? { gradient: 'peerless-gradient', evaluate: 'peerless-evaluate' };
  const mb = (bytes / 1024 / 1024).toFixed(1);
  const upload = bytes < 50 * 1024 * 1024
    ? `--zip-file fileb://${zipPath}`
    : `--code S3Bucket=<bucket>,S3Key=peerless-function.zip   # ${mb} MB: above the 50 MB direct upload limit, upload to S3 first`;
  const create = (fn: string) => [
    `aws lambda create-function --function-name ${fn} \\`,
    `  --runtime ${LAMBDA_RUNTIME} --handler ${LAMBDA_HANDLER} --architectures ${opts.arch ?? 'x86_64'} \\`,
    `  --memory-size ${memory} --timeout ${timeout} --environment 'Variables={PEERLESS_BACKEND=wasm,PEERLESS_REDIS_USERNAME=peerless-functions,PEERLESS_REDIS_PASSWORD=<from: peerless credentials functions>}' \\`,
    `  --role arn:aws:iam::<account-id>:role/<role-with-AWSLambdaBasicExecutionRole> \\`,
    `  ${upload}`,
  ].join('\n');
  const dir = dirname(zipPath);
  return [
    `# ${zipPath} (${mb} MB): one bundle serves both functions; the event names which to run.`,
    `# Deploy with a template written beside it (the role, both functions, their ARNs as outputs):`,
    `#   cd ${dir} && sam deploy --guided --capabilities CAPABILITY_IAM     # template.yaml`,
    `#   cd ${dir} && PEERLESS_REDIS_PASSWORD=... serverless deploy         # serverless.yml`,
    '# or by hand:',
    create(names.gradient),
    create(names.evaluate),
    `# After a rebuild: aws lambda update-function-code --function-name <name> --zip-file fileb://${zipPath}`,
    '# The functions connect to each peer\'s Redis: it must be reachable from Lambda (public',
    '# address with a password, or the functions attached to the peers\' VPC with --vpc-config).',
    `# Then train with the aws-lambda platform (function names ${names.gradient}, ${names.evaluate})`,
    '# and --advertise: the address at which the functions reach each peer\'s Redis.',
  ].join('\n');
}

function imageInstructions(context: string, opts: PackageOptions): string {
  const memory = opts.memoryMb ?? 2048;
  const timeout = opts.timeoutSec ?? 900;
  const names = opts.functionNames ?? { gradient: 'peerless-gradient', evaluate: 'peerless-evaluate' };
  const create = (fn: string) => [
    `aws lambda create-function --function-name ${fn} --package-type Image \\`,
    '  --code ImageUri=<account-id>.dkr.ecr.<region>.amazonaws.com/peerless-native:latest --architectures x86_64 \\',
    `  --memory-size ${memory} --timeout ${timeout} --environment 'Variables={PEERLESS_REDIS_USERNAME=peerless-functions,PEERLESS_REDIS_PASSWORD=<from: peerless credentials functions>}' \\`,
    '  --role arn:aws:iam::<account-id>:role/<role-with-AWSLambdaBasicExecutionRole>',
  ].join('\n');
  return [
    `# ${context}: a container-image build context. The image builds oneDNN ${ONEDNN_VERSION} (the version`,
    '# Debian 12 gives the peers) and the addon inside the official Lambda Node.js 20 image, so the',
    '# addon matches the runtime\'s libraries. Building it downloads oneDNN\'s sources (~15 minutes).',
    `docker build --platform linux/amd64 -t peerless-native ${context}`,
    'aws ecr create-repository --repository-name peerless-native   # once',
    'aws ecr get-login-password | docker login --username AWS --password-stdin <account-id>.dkr.ecr.<region>.amazonaws.com',
    'docker tag peerless-native <account-id>.dkr.ecr.<region>.amazonaws.com/peerless-native:latest',
    'docker push <account-id>.dkr.ecr.<region>.amazonaws.com/peerless-native:latest',
    create(names.gradient),
    create(names.evaluate),
    '# Test it locally first: docker run -p 9000:8080 peerless-native, then POST an event to',
    '# http://localhost:9000/2015-03-31/functions/function/invocations (the image\'s runtime emulator).',
    '# The functions connect to each peer\'s Redis: it must be reachable from Lambda.',
    '# Train with --backend native: a function that cannot compute on it fails instead of falling back.',
  ].join('\n');
}
