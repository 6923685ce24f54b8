/**
 * How peers exchange their averages (the configuration's `exchange`), in a module of its own so
 * that the CLI's flags and --help name them without loading the schema (zod).
 */
export const EXCHANGES = ['all', 'sharded', 'sharded-step'] as const;
export type Exchange = (typeof EXCHANGES)[number];
