/**
 * The Zipf trace simulation of the cache's admission policy: a seeded trace of requests over
 * `keys` identifiers (rank r asked for with probability ∝ 1 / r^s), replayed through the real
 * answer cache (src/resolver/cache.ts) as the resolver uses it (`get`, and `offer` on a miss),
 * once with admission and once without (the plain LRU). Hit ratios only: no times.
 * `npm run bench -- zipf` prints the table; test/admission.test.ts asserts on it.
 */
import { createAnswerCache, ENTRY_OVERHEAD_BYTES } from '../src/resolver/cache.js';

/** mulberry32: a small seeded PRNG, so every run replays the same trace. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `requests` ranks (0-based, 0 the most asked for) drawn from a Zipf distribution over `keys`. */
export function zipfTrace(keys: number, s: number, requests: number, seed: number): Uint32Array {
  const cdf = new Float64Array(keys);
  let sum = 0;
  for (let r = 0; r < keys; r++) cdf[r] = sum += 1 / Math.pow(r + 1, s);
  const random = prng(seed);
  const trace = new Uint32Array(requests);
  for (let i = 0; i < requests; i++) {
    const u = random() * sum;
    let lo = 0;
    let hi = keys - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    trace[i] = lo;
  }
  return trace;
}

export interface ZipfCase {
  s: number;
  /** Cache size as a fraction of the keys (0.01 = room for 1 % of them). */
  cacheFraction: number;
}

export interface ZipfRow extends ZipfCase {
  keys: number;
  requests: number;
  cacheEntries: number;
  lruHitRatio: number;
  admissionHitRatio: number;
  /** Misses the admission policy did not store (inserts saved). */
  notAdmitted: number;
  lruInserts: number;
  admissionInserts: number;
}

/** Every answer of the simulation is this many bytes (the mean public answer of the bench fixture is ~870). */
const BODY_BYTES = 870;

/** Replays `trace` through one cache; returns hits and inserts. */
export function replay(trace: Uint32Array, names: string[], cacheEntries: number, admission: boolean): { hits: number; inserts: number; notAdmitted: number } {
  const perEntry = BODY_BYTES + names[0]!.length + ENTRY_OVERHEAD_BYTES;
  const cache = createAnswerCache<{ bytes: number }>({ maxBytes: cacheEntries * perEntry, admission });
  let hits = 0;
  let inserts = 0;
  for (let i = 0; i < trace.length; i++) {
    const key = names[trace[i]!]!;
    if (cache.get(key) !== undefined) hits++;
    // One answer object per miss, as the resolver builds them: the cache links the objects it holds.
    else if (cache.offer(key, { bytes: BODY_BYTES })) inserts++;
  }
  return { hits, inserts, notAdmitted: cache.stats().notAdmitted };
}

/** Names of equal length, so every entry costs the same bytes and the cache holds exactly `cacheEntries`. */
export function keyNames(keys: number): string[] {
  const width = String(keys - 1).length;
  return Array.from({ length: keys }, (_, r) => `88.100.7/ZIPF-${String(r).padStart(width, '0')}`);
}

export function simulate(opts: { keys: number; requests: number; seed: number; cases: ZipfCase[] }): ZipfRow[] {
  const names = keyNames(opts.keys);
  const rows: ZipfRow[] = [];
  const traces = new Map<number, Uint32Array>();
  for (const c of opts.cases) {
    let trace = traces.get(c.s);
    if (trace === undefined) traces.set(c.s, (trace = zipfTrace(opts.keys, c.s, opts.requests, opts.seed)));
    const cacheEntries = Math.round(opts.keys * c.cacheFraction);
    const lru = replay(trace, names, cacheEntries, false);
    const adm = replay(trace, names, cacheEntries, true);
    rows.push({
      ...c,
      keys: opts.keys,
      requests: opts.requests,
      cacheEntries,
      lruHitRatio: lru.hits / opts.requests,
      admissionHitRatio: adm.hits / opts.requests,
      notAdmitted: adm.notAdmitted,
      lruInserts: lru.inserts,
      admissionInserts: adm.inserts,
    });
  }
  return rows;
}

export const ZIPF_CASES: ZipfCase[] = [
  { s: 0.8, cacheFraction: 0.01 },
  { s: 0.8, cacheFraction: 0.1 },
  { s: 1.0, cacheFraction: 0.01 },
  { s: 1.0, cacheFraction: 0.1 },
];

export function zipfTable(rows: ZipfRow[]): string {
  const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
  const lines = ['| Zipf s | cache (of keys) | plain LRU hit ratio | with admission | LRU inserts | inserts with admission |', '|---|---|---|---|---|---|'];
  for (const r of rows)
    lines.push(
      `| ${r.s.toFixed(1)} | ${r.cacheEntries.toLocaleString('en-US')} (${r.cacheFraction * 100} %) | ${pct(r.lruHitRatio)} | ${pct(r.admissionHitRatio)} | ${r.lruInserts.toLocaleString('en-US')} | ${r.admissionInserts.toLocaleString('en-US')} |`,
    );
  return lines.join('\n');
}
