/**
 * The key filter (src/resolver/keyfilter.ts): not-found answers without a database read, and
 * never a not-found for an identifier the store has — whoever wrote it.
 */
import t, { type Test } from 'tap';
import { Readable } from 'node:stream';
import { parseIdentifier } from '../src/identifier/index.js';
import { createKeyFilter, keyFilterBytes } from '../src/resolver/keyfilter.js';
import { buildEntry, notFoundEntry } from '../src/resolver/index.js';
import { errorBody } from '../src/errors.js';
import { ADMIN, registrar, sampleValues, secondRegistry, startNode, TEST_ENGINE } from './helpers.js';

const notFoundBody = (handle: string) => JSON.stringify({ responseCode: 100, handle, message: `${handle} is not registered`, code: 'IDN_NOT_FOUND' });

t.test('filter: every added key is found; few others are', async (t) => {
  const f = createKeyFilter(20_000);
  t.equal(f.bytes, keyFilterBytes(20_000), 'keyFilterBytes says what it allocates');
  t.ok(f.capacity >= 20_000, `sized for at least what was asked: ${f.capacity}`);
  for (let i = 0; i < 20_000; i++) f.add(`88.100.7/engine-2026-${i}`);
  let missing = 0;
  for (let i = 0; i < 20_000; i++) if (!f.mightHave(`88.100.7/engine-2026-${i}`)) missing++;
  t.equal(missing, 0, 'no false negative');
  let falsePositives = 0;
  for (let i = 0; i < 20_000; i++) if (f.mightHave(`88.100.7/other-2026-${i}`)) falsePositives++;
  t.ok(falsePositives < 400, `false positives under 2 % at capacity: ${falsePositives} of 20000`);
  t.equal(f.added, 20_000);
  t.notOk(createKeyFilter(10).mightHave('88.100.7/x'), 'an empty filter has nothing');
});

t.test('the not-found answer is the error body byte for byte, in any spelling', async (t) => {
  for (const text of ['88.100.7/Nope-1', '88.100.7/a b~', '88.100.7/"quoted"\\', '88.100.7/发动机-Ä', '88.100.7/😀', '0.NA/88.100.7']) {
    const e = notFoundEntry(text);
    const body = JSON.stringify(errorBody('IDN_NOT_FOUND', `${text} is not registered`, text));
    t.equal(e.body, body, text);
    t.equal(e.bytes, Buffer.byteLength(body), `${text}: its UTF-8 length`);
    t.match(e, { status: 404, etag: undefined, maxAge: undefined, partial: false });
    t.equal(Object.getPrototypeOf(e), Object.getPrototypeOf(buildEntry(200, '{}', 60)), `${text}: built like every other entry (one shape)`);
  }
});

// The filter's behaviour on this engine (test/pg-keyfilter.test.ts runs this file on PostgreSQL).
{
  /** Starts a node and waits until its key filter is filled. */
  async function filteredNode(t: Test, overrides: Record<string, unknown> = {}) {
    const c = await startNode(t, overrides);
    await c.node.resolver.loadKeys();
    return c;
  }

  t.test('an unknown identifier is answered by the filter, byte for byte as the store would', async (t) => {
    const c = await filteredNode(t);
    const reg = await registrar(c);
    t.equal((await c.call('PUT', '/api/handles/88.100.7/KNOWN-1', { token: reg, body: sampleValues })).status, 200);
    t.match(c.node.resolver.stats(), { keyFilter: 'ready' });
    const before = c.node.resolver.stats().filtered;
    const res = await c.call('GET', '/api/handles/88.100.7/Nope-1');
    t.equal(res.status, 404);
    t.equal(res.text, notFoundBody('88.100.7/Nope-1'), 'the not-found body, in the spelling asked');
    t.equal(c.node.resolver.stats().filtered, before + 1, 'answered by the filter');
    // Written by this node after the filter was filled: the write's own feed entry added it.
    const known = await c.call('GET', '/api/handles/88.100.7/KNOWN-1');
    t.equal(known.status, 200);
    t.equal(c.node.resolver.stats().filtered, before + 1, 'a registered identifier is never filtered');
    // auth=true asks the authority: the store, not the filter.
    const auth = await c.call('GET', '/api/handles/88.100.7/Nope-2?auth=true');
    t.equal(auth.status, 404);
    t.equal(c.node.resolver.stats().filtered, before + 1, 'auth=true reads the store');
    const metrics = await c.call('GET', '/metrics');
    t.match(metrics.text, /idnode_key_filter_negatives_total \d+/);
    t.match(metrics.text, /idnode_key_filter_bytes [1-9]/);
    t.match((await c.call('GET', '/readyz')).json.cache, { keyFilter: 'ready', keyFilterKeys: Number });
  });

  t.test('a record another connection writes is found once the feed reaches this node', async (t) => {
    const c = await filteredNode(t);
    await registrar(c);
    const other = await secondRegistry(t, c.config);
    const id = parseIdentifier('88.100.7/ELSEWHERE-1');
    // Stop this node's follower from reading the feed: the write below stays unapplied here.
    c.node.changes.stop();
    await other.records.put(id, { values: sampleValues }, { overwrite: true }, 'test');
    const before = c.node.resolver.stats().filtered;
    const res = await c.call('GET', '/api/handles/88.100.7/ELSEWHERE-1');
    if (TEST_ENGINE === 'sqlite') {
      // SQLite: no per-miss check of the file; the filter answers until the feed is read.
      t.equal(res.status, 404, 'not yet: this node has not read the feed');
      t.equal(c.node.resolver.stats().filtered, before + 1, 'answered by the filter');
      t.equal((await c.call('GET', '/api/handles/88.100.7/ELSEWHERE-1?auth=true')).status, 200, 'auth=true reads the file');
    }
    // PostgreSQL: until this node reads the feed (LISTEN, or the backstop), the filter may not know it yet.
    else t.ok(res.status === 200 || res.status === 404, `before the feed: ${res.status}`);
    await c.node.changes.check();
    const after = await c.call('GET', '/api/handles/88.100.7/ELSEWHERE-1?auth=false');
    t.equal(after.status, 200, 'found once the feed is applied');
    t.equal((await c.call('GET', '/api/handles/88.100.7/ELSEWHERE-1')).status, 200, 'and on the fast path');
  });

  t.test('registered by another process: found after the change feed is read', async (t) => {
    const c = await filteredNode(t);
    await registrar(c);
    const other = await secondRegistry(t, c.config);
    t.equal((await c.call('GET', '/api/handles/88.100.7/LATER-1')).status, 404, 'not registered yet');
    await other.records.put(parseIdentifier('88.100.7/LATER-1'), { values: sampleValues }, { overwrite: true }, 'test');
    const line = JSON.stringify({ handle: '88.100.7/LATER-2', values: sampleValues });
    t.match(await other.bulk.run(Readable.from([line]), { prefixKey: '88.100.7', overwrite: true, onError: 'line', actor: 'test' }, () => undefined), {
      ok: 1,
      failed: 0,
    });
    // The other registry applied its own writes before they returned: its cursor is theirs.
    await c.node.changes.caughtUp(other.changes.cursor());
    t.equal((await c.call('GET', '/api/handles/88.100.7/LATER-1')).status, 200, 'a single write, once the feed is read');
    t.equal((await c.call('GET', '/api/handles/88.100.7/LATER-2')).status, 200, 'a bulk write, once the feed is read');
    t.equal(c.node.resolver.stats().keyFilter, 'ready');
  });

  t.test("this node's own writes are found at once, whatever path wrote them", async (t) => {
    const c = await filteredNode(t);
    const reg = await registrar(c);
    for (let i = 0; i < 3; i++) t.equal((await c.call('GET', `/api/handles/88.100.7/OWN-${i}`)).status, 404, `OWN-${i} not yet`);
    t.equal((await c.call('PUT', '/api/handles/88.100.7/OWN-0', { token: reg, body: sampleValues })).status, 200);
    const up = await fetch(`${c.url}/api/prefixes/88.100.7/handles`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/x-ndjson' },
      body: JSON.stringify({ handle: '88.100.7/OWN-1', values: sampleValues }),
    });
    t.equal(up.status, 200);
    await up.text();
    await c.node.records.put(parseIdentifier('88.100.7/own-2'), { values: sampleValues }, { overwrite: true }, 'test');
    for (let i = 0; i < 3; i++) t.equal((await c.call('GET', `/api/handles/88.100.7/OWN-${i}`)).status, 200, `OWN-${i} found at once`);
  });

  t.test('a node whose follower reset refills its filter; misses read the store meanwhile', async (t) => {
    const c = await filteredNode(t);
    const reg = await registrar(c);
    t.equal((await c.call('PUT', '/api/handles/88.100.7/KEEP-1', { token: reg, body: sampleValues })).status, 200);
    c.node.resolver.clear();
    t.match(c.node.resolver.stats(), { keyFilter: 'building' }, 'no filter until refilled');
    const before = c.node.resolver.stats().filtered;
    t.equal((await c.call('GET', '/api/handles/88.100.7/Nope-3')).status, 404);
    t.equal((await c.call('GET', '/api/handles/88.100.7/KEEP-1')).status, 200);
    await c.node.resolver.loadKeys();
    t.match(c.node.resolver.stats(), { keyFilter: 'ready' });
    t.equal((await c.call('GET', '/api/handles/88.100.7/KEEP-1')).status, 200, 'the refilled filter has it');
    t.equal((await c.call('GET', '/api/handles/88.100.7/Nope-4')).status, 404);
    t.ok(c.node.resolver.stats().filtered > before, 'the refilled filter answers');
  });

  t.test('more keys than the filter was sized for: it is refilled larger, nothing is lost', async (t) => {
    const c = await filteredNode(t);
    await registrar(c);
    const first = c.node.resolver.stats().keyFilterBytes;
    // 1,024 keys is the smallest capacity: a bulk upload past it.
    const lines = Array.from({ length: 2_600 }, (_, i) => JSON.stringify({ handle: `88.100.7/MANY-${i}`, values: sampleValues })).join('\n');
    const up = await fetch(`${c.url}/api/prefixes/88.100.7/handles`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/x-ndjson' },
      body: lines,
    });
    t.equal(up.status, 200, `bulk upload: ${(await up.text()).slice(-120)}`);
    await c.node.resolver.loadKeys();
    t.ok(c.node.resolver.stats().keyFilterBytes > first, `refilled larger: ${first} → ${c.node.resolver.stats().keyFilterBytes} bytes`);
    for (const i of [0, 1_299, 2_599]) t.equal((await c.call('GET', `/api/handles/88.100.7/MANY-${i}`)).status, 200, `MANY-${i}`);
  });

  t.test('many single writes past its capacity refill the filter a few times, not once per write', async (t) => {
    // The writes take seconds on SQLite (one fsync each): the client's idle connection must not be closed meanwhile.
    const c = await filteredNode(t, { limits: { keepAliveTimeoutMs: 600_000 } });
    await registrar(c);
    const fills = c.node.resolver.stats().keyFilterFills;
    // About 1,600 keys at first: each of these writes is its own feed entry past that.
    await Promise.all(
      Array.from({ length: 2_500 }, (_, i) => c.node.records.put(parseIdentifier(`88.100.7/ONE-${i}`), { values: sampleValues }, { overwrite: true }, 'test')),
    );
    await c.node.resolver.loadKeys();
    const stats = c.node.resolver.stats();
    t.ok(stats.keyFilterKeys >= 2_500, `every written key: ${stats.keyFilterKeys}`);
    t.ok(stats.keyFilterFills - fills <= 4, `fills: ${stats.keyFilterFills - fills}`);
    t.equal((await c.call('GET', '/api/handles/88.100.7/ONE-2499')).status, 200);
  });

  t.test('a bound too small for the records: no filter, every miss reads the store', async (t) => {
    const c = await filteredNode(t, { cache: { keyFilterMaxBytes: 16 } });
    t.match(c.node.resolver.stats(), { keyFilter: 'tooLarge', keyFilterBytes: 0 });
    t.equal((await c.call('GET', '/api/handles/88.100.7/Nope-5')).status, 404);
    t.equal(c.node.resolver.stats().filtered, 0);
    const off = await filteredNode(t, { cache: { keyFilterMaxBytes: 0 } });
    t.match(off.node.resolver.stats(), { keyFilter: 'off' });
    t.equal((await off.call('GET', '/api/handles/88.100.7/Nope-6')).status, 404);
  });
}
