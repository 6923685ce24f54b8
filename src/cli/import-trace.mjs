// For help.spec.ts: reports every bare package a process resolves on stderr ("resolve <name>"),
// through Node's module hooks (node --import ./import-trace.mjs ...).
import { register } from 'node:module';

register('data:text/javascript,' + encodeURIComponent(`
  export async function resolve(specifier, context, next) {
    if (!specifier.startsWith('.') && !specifier.startsWith('/') && !specifier.includes(':')) process.stderr.write('resolve ' + specifier + '\\n');
    return next(specifier, context);
  }
`));
