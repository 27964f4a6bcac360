import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { createAnswerCache, ENTRY_OVERHEAD_BYTES, sketchMaxWidthFor, sketchWidthFor, START_COUNTERS } from '../src/resolver/cache.js';
import { createSketch, hashKey } from '../src/resolver/sketch.js';
import { answerEntry, buildEntry, type Entry } from '../src/resolver/index.js';
import { simulate, ZIPF_CASES } from '../bench/zipf.js';
import { registrar, sampleValues, startNode } from './helpers.js';

t.test('sketch: counts, saturates at 15, halves every resetAfter requests, never underestimates', async (t) => {
  const s = createSketch(1000, 1_000_000);
  t.equal(s.width, 1024, 'rounded up to a power of two');
  t.equal(s.estimate('a'), 0, 'never seen');
  t.equal(s.record('a'), 1);
  t.equal(s.record('a'), 2);
  t.equal(s.estimate('a'), 2);
  for (let i = 0; i < 20; i++) s.record('b');
  t.equal(s.estimate('b'), 15, '4-bit counters saturate');
  t.equal(s.record('b'), 15);

  // Many keys in a small sketch: collisions may only raise an estimate, never lower it.
  const small = createSketch(64, 1_000_000);
  const truth = new Map<string, number>();
  for (let i = 0; i < 2000; i++) {
    const k = `88.100.7/K-${(i * 7919) % 300}`;
    truth.set(k, (truth.get(k) ?? 0) + 1);
    small.record(k);
  }
  let under = 0;
  for (const [k, n] of truth) if (small.estimate(k) < Math.min(15, n)) under++;
  t.equal(under, 0, 'count-min: no estimate below the true count');

  const h = createSketch(64, 100);
  for (let i = 0; i < 12; i++) h.record('hot');
  t.equal(h.estimate('hot'), 12);
  for (let i = 0; i < 88; i++) h.record(`cold-${i}`);
  t.equal(h.halvings(), 1, 'halved after 100 recorded requests');
  t.ok(h.estimate('hot') >= 6 && h.estimate('hot') <= 7, `halved: ${h.estimate('hot')}`);
  t.equal(createSketch(4096).resetAfter, 40_960, 'default window: 10 × width');
});

t.test('sketch hash: deterministic, spreads keys that differ in one character', async (t) => {
  t.equal(hashKey('88.100.7/engine-2026-000042'), hashKey('88.100.7/engine-2026-000042'));
  const seen = new Set<number>();
  for (let i = 0; i < 10_000; i++) seen.add(hashKey(`88.100.7/engine-2026-${String(i).padStart(6, '0')}`) & 1023);
  t.ok(seen.size > 1000, `10,000 keys fill ${seen.size} of 1,024 buckets`);
});

t.test('sketch size: from the config key, else derived from the cache bytes and bounded', async (t) => {
  t.equal(sketchWidthFor(8 * 1024 * 1024), 8192, '8 MiB: one counter per KiB');
  t.equal(sketchWidthFor(8 * 1024 * 1024, 1000), 1024, 'configured, rounded to a power of two');
  t.equal(sketchWidthFor(64 * 1024 ** 3), 1 << 24, 'at most 2^24 derived');
  t.equal(createAnswerCache({ maxBytes: 8 * 1024 * 1024, admission: true }).sketch!.width, 8192);
  t.equal(createAnswerCache({ maxBytes: 8 * 1024 * 1024, admission: false }).sketch, undefined, 'no sketch without admission');
  t.equal(createAnswerCache({ maxBytes: 8 * 1024 ** 3, admission: true }).sketch!.width, START_COUNTERS, 'an 8 GiB bound starts at 2^20, not 2^23');
  t.equal(createAnswerCache({ maxBytes: 8 * 1024 ** 3, admission: true, sketchCounters: 1 << 22 }).sketch!.width, 1 << 22, 'a configured width is taken whole');
});

t.test('sketch growth: doubling keeps every estimate and the window follows the width', async (t) => {
  const s = createSketch(64);
  const keys = Array.from({ length: 3000 }, (_, i) => `88.100.7/K-${i}`);
  for (let i = 0; i < keys.length; i++) for (let n = 0; n <= i % 5; n++) s.record(keys[i]!);
  const before = keys.map((k) => s.estimate(k));
  t.ok(
    before.some((e) => e > 0),
    'counts recorded',
  );
  s.grow();
  t.equal(s.width, 128);
  t.equal(s.resetAfter, 1280, 'default window: 10 × the new width');
  t.same(
    keys.map((k) => s.estimate(k)),
    before,
    'every estimate as before the growth',
  );
  const fixed = createSketch(64, 500);
  fixed.grow();
  t.equal(fixed.resetAfter, 500, 'a window given stays');
  // Keys asked for once live in the doorkeeper only: it doubles with the window and keeps them.
  const wide = createSketch(1 << 12);
  const once = Array.from({ length: 200 }, (_, i) => `88.100.7/ONCE-${i}`);
  for (const k of once) wide.record(k);
  t.same(
    once.map((k) => wide.estimate(k)),
    once.map(() => 1),
    'a key asked for once is estimated 1',
  );
  wide.grow();
  t.same(
    once.map((k) => wide.estimate(k)),
    once.map(() => 1),
    'and still 1 after the growth: the doorkeeper kept it',
  );
  t.equal(wide.record(once[0]!), 2, 'its second request counts both');
});

t.test('a derived sketch grows with the entries held, up to the bound; a configured one does not', async (t) => {
  // Room for 8,192 entries of 387 bytes: one counter per KiB of the bound would be 4,096.
  const maxBytes = 8192 * sizeOf('k-00000');
  t.equal(sketchWidthFor(maxBytes), 4096);
  t.equal(sketchMaxWidthFor(maxBytes), 16384, 'the bound holds at most 11,330 entries of ENTRY_OVERHEAD_BYTES');
  const c = createAnswerCache<{ bytes: number }>({ maxBytes, admission: true, startCounters: 1024 });
  t.equal(c.sketch!.width, 1024);
  const widths = new Set<number>();
  let refused = 0;
  let narrow = 0;
  for (let i = 0; i < 8192; i++) {
    const k = `k-${String(i).padStart(5, '0')}`;
    c.offer(k, entry());
    if (!c.offer(k, entry())) refused++;
    widths.add(c.sketch!.width);
    if (c.sketch!.width < c.stats().entries) narrow++;
  }
  t.equal(refused, 0, 'every key asked twice was stored (growing forgot no count)');
  t.equal(narrow, 0, 'never fewer counters per row than entries held');
  t.same([...widths], [1024, 2048, 4096, 8192], 'doubled as the entries passed the width, past one per KiB');
  for (let i = 0; i < 2000; i++) c.offer(`x-${i}`, entry(), { firstMiss: true });
  t.equal(c.stats().entries, 8192, 'full');
  t.equal(c.sketch!.width, 8192, 'the sketch stops at one counter per entry held, below the 16,384 the bound allows');

  const fixed = createAnswerCache<{ bytes: number }>({ maxBytes, admission: true, sketchCounters: 1024 });
  for (let i = 0; i < 3000; i++) for (let n = 0; n < 2; n++) fixed.offer(`k-${i}`, entry());
  t.equal(fixed.stats().entries, 3000);
  t.equal(fixed.sketch!.width, 1024, 'configured: no growth');
});

const entry = (bytes = 100) => ({ bytes });
const sizeOf = (key: string, bytes = 100) => bytes + key.length + ENTRY_OVERHEAD_BYTES;

t.test('sketch doorkeeper: keys asked for once leave the counts alone, so a flood of one-off keys is not admitted', async (t) => {
  const s = createSketch(64);
  t.equal(s.record('once'), 1, 'first request: 1');
  t.equal(s.estimate('once'), 1, 'the doorkeeper holds it');
  t.equal(s.record('once'), 2, 'second request: 2 (the doorkeeper counted the first)');
  t.equal(s.record('once'), 3);
  // Far more distinct keys than counters (the cold scenario: 1M keys, 8,192 counters): a
  // never-seen key's estimate stays 0, where counting every one-off saturated the counters.
  const flood = createSketch(64);
  let seenAsRepeat = 0;
  for (let i = 0; i < 100_000; i++) if (flood.record(`88.100.1/PUMP-${i}`) >= 2) seenAsRepeat++;
  t.ok(seenAsRepeat < 10_000, `${seenAsRepeat} of 100,000 one-off keys counted as asked before`);
  let overestimated = 0;
  for (let i = 0; i < 1000; i++) if (flood.estimate(`88.100.2/NEW-${i}`) >= 2) overestimated++;
  t.ok(overestimated < 50, `${overestimated} of 1,000 never-seen keys estimated at 2 or more`);
  t.ok(flood.halvings() > 0, 'the doorkeeper was emptied at the halvings');

  const c = createAnswerCache<{ bytes: number }>({ maxBytes: 100 * sizeOf('88.100.1/PUMP-000000'), admission: true });
  let stored = 0;
  for (let i = 0; i < 20_000; i++) if (c.offer(`88.100.1/PUMP-${String((i * 7919) % 1_000_000).padStart(6, '0')}`, entry())) stored++;
  t.ok(stored < 1000, `${stored} of 20,000 one-off misses stored`);
});

t.test('cache: a first miss is not stored, a second is; admission off stores every miss', async (t) => {
  const c = createAnswerCache<{ bytes: number }>({ maxBytes: 100 * sizeOf('k-00'), admission: true });
  t.equal(c.offer('k-00', entry()), false, 'first miss');
  t.equal(c.get('k-00'), undefined);
  t.equal(c.offer('k-00', entry()), true, 'asked before: stored');
  t.ok(c.get('k-00'));
  t.same(c.stats(), { entries: 1, bytes: sizeOf('k-00'), maxBytes: 100 * sizeOf('k-00'), evictions: 0, notAdmitted: 1 });
  c.note('k-01');
  t.equal(c.offer('k-01', entry()), true, 'a miss noted without an offer counts as asked before');
  t.equal(c.offer('k-02', entry(), { firstMiss: true }), true, 'firstMiss skips the asked-before rule while there is room');

  const off = createAnswerCache<{ bytes: number }>({ maxBytes: 100 * sizeOf('k-00'), admission: false });
  t.equal(off.offer('k-00', entry()), true);
  t.ok(off.get('k-00'));
  t.equal(off.stats().notAdmitted, 0);
});

t.test('cache full: a newcomer must be asked for more often than the LRU victim', async (t) => {
  const c = createAnswerCache<{ bytes: number }>({ maxBytes: 2 * sizeOf('k-00'), admission: true });
  for (const k of ['k-00', 'k-01']) {
    c.offer(k, entry());
    c.offer(k, entry());
  }
  for (let i = 0; i < 5; i++) c.get('k-00');
  t.equal(c.stats().entries, 2, 'full');
  // k-01 is the victim (least recently used) with a count of 2.
  c.offer('k-02', entry());
  t.equal(c.offer('k-02', entry()), false, 'count 2 does not beat the victim (2)');
  t.equal(c.offer('k-02', entry()), true, 'count 3 does');
  t.same([...c.keys()].sort(), ['k-00', 'k-02'], 'the victim went, the hot entry stayed');
  t.equal(c.stats().evictions, 1);
  t.equal(c.offer('k-03', entry(), { firstMiss: true }), false, 'firstMiss does not skip the victim comparison');
  c.delete('k-00');
  t.equal(c.peek('k-00'), undefined, 'deletes at once whatever the counts');
});

t.test('offering a cached key again replaces its answer', async (t) => {
  const c = createAnswerCache<{ bytes: number; v: number }>({ maxBytes: 2 * sizeOf('k-00'), admission: true });
  for (const k of ['k-00', 'k-01']) for (let i = 0; i < 2; i++) c.offer(k, { bytes: 100, v: 1 });
  for (let i = 0; i < 10; i++) c.get('k-01');
  // k-00 is the victim; offering it again replaces it in place (no eviction needed beyond itself).
  t.equal(c.offer('k-00', { bytes: 100, v: 2 }), true);
  t.equal(c.peek('k-00')!.v, 2);
});

t.test('the LRU evicts the least recently used entry; bytes stay exact through replace, delete and clear', async (t) => {
  const c = createAnswerCache<{ bytes: number; v?: number }>({ maxBytes: 3 * sizeOf('k-00'), admission: false });
  for (const k of ['k-00', 'k-01', 'k-02']) c.offer(k, entry());
  c.get('k-00');
  c.peek('k-01');
  c.offer('k-03', entry());
  t.same([...c.keys()].sort(), ['k-00', 'k-02', 'k-03'], 'k-01 went: a get refreshes k-00, a peek does not refresh k-01');
  c.offer('k-04', entry());
  t.same([...c.keys()].sort(), ['k-00', 'k-03', 'k-04'], 'then k-02, the next least recently used');
  t.equal(c.stats().evictions, 2);

  c.offer('k-03', entry(50));
  t.equal(c.stats().bytes, 2 * sizeOf('k-00') + sizeOf('k-03', 50), 'a replaced answer is counted at its new size');
  c.offer('k-10', entry());
  t.equal(c.stats().evictions, 3, 'k-00, least recently used again, made room');
  c.delete('k-10');
  c.delete('k-nope');
  t.same([...c.keys()].sort(), ['k-03', 'k-04']);
  t.equal(c.stats().bytes, sizeOf('k-04') + sizeOf('k-03', 50), 'deletes give their bytes back');
  c.clear();
  t.same(c.stats(), { entries: 0, bytes: 0, maxBytes: 3 * sizeOf('k-00'), evictions: 3, notAdmitted: 0 });
  for (const k of ['k-20', 'k-21', 'k-22', 'k-23']) c.offer(k, entry());
  t.same([...c.keys()].sort(), ['k-21', 'k-22', 'k-23'], 'after a clear the LRU starts over');
  c.offer('k-big', entry(3 * sizeOf('k-00')));
  t.equal(c.peek('k-big'), undefined, 'an answer larger than the whole cache is not stored');
});

t.test('an Entry reads back the status, partial and max-age it was built with (packed in one field)', async (t) => {
  for (const [status, maxAge] of [
    [200, 0],
    [200, 86400],
    [200, 172800],
    [404, undefined],
    [401, undefined],
    [599, 1],
  ] as const) {
    const e = buildEntry(status, '{"responseCode":1}', maxAge, '"x"');
    t.same([e.status, e.maxAge, e.partial], [status, maxAge, false], `${status}, max-age ${maxAge}`);
    e.partial = true;
    t.same([e.status, e.maxAge, e.partial], [status, maxAge, true], 'partial set, the rest kept');
    e.partial = false;
    t.equal(e.partial, false);
  }
  t.equal(buildEntry(200, '{}', -5).maxAge, 0, 'a negative max-age is sent as 0');
  t.equal(buildEntry(404, '{}', undefined).etag, undefined, 'no ETag but on a 200');
});

t.test('cache.maxBytes is a true bound: the heap an entry takes is at most what it is counted for', async (t) => {
  // 50,000 answers of the bench fixture's shape, as the resolver builds them, with full GCs
  // around the fill (after a warm-up, so compiled code is not counted); then answers with a
  // CJK value (V8 keeps those strings in two bytes per character).
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const at = '2026-11-25T10:00:00Z';
  const value = (index: number, type: string, text: string) => ({ index, type, data: { format: 'string', value: text }, ttl: 86400, timestamp: at });
  // Flat strings, as SQLite returns them.
  const flat = (s: string) => Buffer.from(s).toString(Buffer.byteLength(s) === s.length ? 'latin1' : 'utf8');
  for (const [name, n] of [
    ['warm-up', 1000],
    ['Centrifugal pump CP-200', 50_000],
    ['离心泵 CP-200', 50_000],
  ] as const) {
    const c = createAnswerCache<Entry>({ maxBytes: 1024 ** 3, admission: true });
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < n; i++) {
      const serial = String(i).padStart(9, '0');
      const handle = `88.100.1/PUMP-2026-${serial}`;
      const values = JSON.stringify([value(1, 'URL', `https://trace.example/p/${serial}`), value(2, 'name', name)]);
      const e = answerEntry(flat(handle), flat(values), Date.now(), { maxAge: 86400, expiresAt: null, etag: flat(`"${String(i).padStart(27, 'x')}"`) });
      const key = flat(handle.toLowerCase());
      c.offer(key, e);
      c.offer(key, e);
    }
    gc();
    gc();
    const heap = (process.memoryUsage().heapUsed - before) / n;
    const counted = c.stats().bytes / n;
    if (name === 'warm-up') continue;
    t.equal(c.stats().entries, n);
    t.ok(heap <= counted, `${name}: ${heap.toFixed(0)} heap bytes per entry, counted ${counted.toFixed(0)}`);
    if (name.startsWith('C'))
      t.ok(heap > counted - 100, `counted within 100 bytes of it (ENTRY_OVERHEAD_BYTES ${ENTRY_OVERHEAD_BYTES} is measured, not a guess)`);
  }
});

t.test('Zipf traces (s = 0.8, 1.0; cache 1 % and 10 % of 100,000 keys; 1M requests): admission hits at least as often as plain LRU', async (t) => {
  const rows = simulate({ keys: 100_000, requests: 1_000_000, seed: 20261130, cases: ZIPF_CASES });
  t.equal(rows.length, 4);
  for (const r of rows) {
    const label = `s=${r.s}, cache ${r.cacheFraction * 100} %: LRU ${(r.lruHitRatio * 100).toFixed(2)} %, admission ${(r.admissionHitRatio * 100).toFixed(2)} %`;
    t.ok(r.lruHitRatio > 0.1, `${label}: the trace has hits at all`);
    t.ok(r.admissionHitRatio >= r.lruHitRatio, label);
    t.ok(r.admissionInserts < r.lruInserts / 5, `${label}: inserts ${r.admissionInserts} vs ${r.lruInserts}`);
  }
});

t.test('HTTP: first miss not stored, second stored, third a hit; a write is visible at once; admission off stores at once', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  t.equal((await c.call('PUT', '/api/handles/88.100.7/ADM-1', { token: reg, body: sampleValues })).status, 200);
  const statuses = [];
  for (let i = 0; i < 3; i++) statuses.push((await c.call('GET', '/api/handles/88.100.7/ADM-1')).headers.get('cache-status'));
  t.same(statuses, ['idnode; fwd=uri-miss; detail=not-admitted', 'idnode; fwd=uri-miss; stored', 'idnode; hit']);
  t.equal(c.node.resolver.stats().notAdmitted, 1);

  const nf = [];
  for (let i = 0; i < 3; i++) nf.push((await c.call('GET', '/api/handles/88.100.7/ADM-NONE')).headers.get('cache-status'));
  t.same(nf, ['idnode; fwd=uri-miss; detail=not-admitted', 'idnode; fwd=uri-miss; stored', 'idnode; hit'], 'not-found answers: the same policy');
  t.equal((await c.call('PUT', '/api/handles/88.100.7/ADM-NONE', { token: reg, body: sampleValues })).status, 200);
  const now = await c.call('GET', '/api/handles/88.100.7/ADM-NONE');
  t.equal(now.status, 200, 'the write is visible at once: the cached 404 was dropped');
  t.equal(now.headers.get('cache-status'), 'idnode; fwd=uri-miss; stored', 'and, asked for before, the new answer is stored at once');

  const off = await startNode(t, { cache: { admission: false } });
  const reg2 = await registrar(off);
  await off.call('PUT', '/api/handles/88.100.7/ADM-1', { token: reg2, body: sampleValues });
  t.equal((await off.call('GET', '/api/handles/88.100.7/ADM-1')).headers.get('cache-status'), 'idnode; fwd=uri-miss; stored', 'cache.admission false');
  t.equal((await off.call('GET', '/api/handles/88.100.7/ADM-1')).headers.get('cache-status'), 'idnode; hit');
});
