import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';

/** This thread's V8 heap: live bytes, of which compiled code, and memory held outside it. */
export function heapNow(): { heapUsedBytes: number; codeBytes: number; externalBytes: number } {
  const h = getHeapStatistics();
  const codeBytes = getHeapSpaceStatistics().filter((s) => s.space_name.startsWith('code')).reduce((n, s) => n + s.space_used_size, 0);
  return { heapUsedBytes: h.used_heap_size, codeBytes, externalBytes: h.external_memory };
}
