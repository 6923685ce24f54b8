import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ensureModuleBuilt } from '../src/cluster/module-path.ts';

/**
 * The command line of a bench script run directly with tsx: prints `usage` for --help, refuses
 * an unknown option with one line and the usage (exit 2), and reads the valued options.
 */
export function scriptArgs(name: string, usage: string, valued: string[], flags: string[] = ['--json']): { option(o: string, dflt: string): string; has(flag: string): boolean } {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  for (let i = 0; i < args.length; i++) {
    if (valued.includes(args[i]!)) i++;
    else if (!flags.includes(args[i]!)) {
      process.stderr.write(`${name}: unknown option ${args[i]}\n${usage}\n`);
      process.exit(2);
    }
  }
  return {
    option: (o, dflt) => { const i = args.indexOf(o); return i >= 0 ? args[i + 1]! : dflt; },
    has: (flag) => args.includes(flag),
  };
}

/**
 * The module builds a comma-separated --modules list names, as absolute paths (redis-server
 * loads modules after moving into its --dir), or the one setup made; exits with one line when
 * a build is missing.
 */
export function moduleBuilds(name: string, list: string): string[] {
  const modules = list.split(',').filter(Boolean).map((m) => resolve(m));
  if (modules.length === 0) modules.push(ensureModuleBuilt());
  for (const m of modules) {
    if (!existsSync(m)) {
      process.stderr.write(`${name}: no module build at ${m} (a peerless.so: make -C native builds native/build/peerless.so)\n`);
      process.exit(2);
    }
  }
  return modules;
}
