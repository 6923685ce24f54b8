import { readFileSync } from 'node:fs';

/** A data file's bytes; an unreadable one is one line naming it and what it should be. */
export function readDataFile(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`${file}: cannot read the ${what} file: ${(err as Error).message}`);
  }
}
