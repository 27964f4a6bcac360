/**
 * Figures for the report, not a test of behaviour (no .test.ts: `npm test` does not run it):
 * `npx tap --disable-coverage test/pg-figures.ts`. A cluster with fsync on, since group commit
 * is about sharing fsyncs. Prints writes/s and read latency; asserts only that the work was done.
 */
import t from 'tap';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { connectStore, type StoreEngine, versionLine } from '../src/store/index.js';
import { tempDir } from './helpers.js';
import { pgCluster } from './pg.js';

const WRITES = 1000;
const CALLERS = 32;

function put(s: StoreEngine, key: string, values: string) {
  return s.write({ actor: 'bench', action: 'record.update', target: key }, async (tx) => {
    await tx.putRecord({ handleKey: key, handle: key, prefixKey: '88.1', valuesJson: values, publicJson: null, maxAge: 0, expiresAt: null, etag: '"e"' });
    return { result: undefined, payload: versionLine(key, values) };
  });
}

/** WRITES single-record writes from CALLERS concurrent callers, each awaiting its own before the next. */
async function writesPerSecond(s: StoreEngine): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      for (let i = next++; i < WRITES; i = next++) await put(s, `88.1/w${i}`, `[${i}]`);
    }),
  );
  return (WRITES / (performance.now() - t0)) * 1000;
}

async function readLatency(s: StoreEngine): Promise<{ serialUs: number; concurrentPerS: number }> {
  const n = 2000;
  let t0 = performance.now();
  for (let i = 0; i < n; i++) await s.answerRow(`88.1/w${i % WRITES}`);
  const serialUs = ((performance.now() - t0) / n) * 1000;
  let next = 0;
  t0 = performance.now();
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      for (let i = next++; i < n * 4; i = next++) await s.answerRow(`88.1/w${i % WRITES}`);
    }),
  );
  return { serialUs, concurrentPerS: ((n * 4) / (performance.now() - t0)) * 1000 };
}

t.test('figures', async (t) => {
  const c = await pgCluster(t, { fsync: true });
  if (c === undefined) return;
  const rows: string[] = [];
  for (const batchMax of [64, 1]) {
    const batches: number[] = [];
    const s = await connectStore({ engine: 'postgres', url: await c.createDatabase(), batchMax, onBatch: (n) => batches.push(n) });
    const wps = await writesPerSecond(s);
    t.equal(await s.totalRecords(), WRITES);
    t.same(await s.verifyAudit(), { ok: true, checked: WRITES });
    rows.push(
      `postgres batchMax ${batchMax}: ${wps.toFixed(0)} writes/s, ${batches.length} transactions (mean ${(WRITES / batches.length).toFixed(1)} writes each)`,
    );
    if (batchMax === 64) {
      const r = await readLatency(s);
      rows.push(`postgres answerRow: ${r.serialUs.toFixed(0)} µs one at a time; ${r.concurrentPerS.toFixed(0)}/s with ${CALLERS} concurrent`);
    }
    await s.close();
  }
  const sqlite = await connectStore({ engine: 'sqlite', path: join(tempDir(t), 'a.db') });
  rows.push(`sqlite: ${(await writesPerSecond(sqlite)).toFixed(0)} writes/s`);
  const r = await readLatency(sqlite);
  rows.push(`sqlite answerRow (async): ${r.serialUs.toFixed(0)} µs one at a time; ${r.concurrentPerS.toFixed(0)}/s with ${CALLERS} concurrent`);
  t.equal(await sqlite.totalRecords(), WRITES);
  await sqlite.close();
  for (const row of rows) t.comment(row);
});
