/**
 * What one cached answer costs in memory, in process, without HTTP or a database:
 * `node --expose-gc dist/bench/entry-memory.js [entries]` fills the answer cache with answers
 * shaped like the memory scenario's fixture records (about 810-byte bodies, an ETag as the
 * write path stores it) and prints heap and RSS per entry after a full GC. It isolates the
 * cache's own cost (entry object, key, lru-cache bookkeeping) from what a running node adds;
 * `npm run bench -- memory` measures the node.
 */
import { createAnswerCache, ENTRY_OVERHEAD_BYTES } from '../src/resolver/cache.js';
import { answerEntry, type Entry } from '../src/resolver/index.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');
const entries = Number(process.argv[2] ?? 1_000_000);
const cache = createAnswerCache<Entry>({ maxBytes: 64 * 1024 ** 3, admission: true });
const at = '2026-11-25T10:00:00Z';
const value = (index: number, type: string, text: string) => ({ index, type, data: { format: 'string', value: text }, ttl: 86400, timestamp: at });

gc();
const before = process.memoryUsage();
const now = Date.now();
for (let i = 0; i < entries; i++) {
  const serial = String(i).padStart(9, '0');
  const handle = `88.100.1/PUMP-2026-${serial}`;
  const values = JSON.stringify([
    value(1, 'URL', `https://trace.bench-works.example/p/PUMP-2026-${serial}`),
    value(2, 'name', 'Centrifugal pump model CP-200 with stainless impeller'),
    value(3, 'batch', `PUMP-B2026-${String(Math.ceil(i / 500)).padStart(5, '0')}`),
    value(4, 'manufacturer', 'Bench Works Co., Ltd. plant 3'),
    value(5, 'EMAIL', 'trace@bench-works.example'),
  ]);
  // A flat string, as SQLite returns it (a template literal would be a rope of three parts).
  const etag = Buffer.from(`"${((i * 2654435761) >>> 0).toString(36).padStart(27, '0')}"`).toString('latin1');
  const entry = answerEntry(handle, values, now, { maxAge: 86400, expiresAt: null, etag });
  const key = handle.toLowerCase();
  // Admission stores an answer on its second miss.
  cache.offer(key, entry);
  cache.offer(key, entry);
}
gc();
gc();
const after = process.memoryUsage();
const stats = cache.stats();
const per = (a: number, b: number) => Math.round((a - b) / stats.entries);
console.log(
  JSON.stringify({
    entries: stats.entries,
    meanBodyBytes: Math.round(stats.bytes / stats.entries) - ENTRY_OVERHEAD_BYTES - 28,
    heapBytesPerEntry: per(after.heapUsed, before.heapUsed),
    rssBytesPerEntry: per(after.rss, before.rss),
    rssMiB: Math.round(after.rss / 1024 ** 2),
    externalMiB: Math.round((after.external + after.arrayBuffers) / 1024 ** 2),
    node: process.version,
  }),
);
