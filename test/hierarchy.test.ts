/**
 * A whole hierarchy as real processes: top-level node T (homes 88; delegates 88.100 to A and
 * 88.200 to B), secondary nodes A and B, and an enterprise node E delegated from A
 * (88.100.9). Every node is `idnode serve --config` in a child process on its own SQLite file.
 */
import t from 'tap';
import { eventually, node, ok, tempDir } from './helpers.js';

t.test('a four-node hierarchy: forwarding, caching, one flight, failures, sync across restarts, loops', async (t) => {
  const dir = tempDir(t);
  const T = await node(t, dir, 'T', { homed: ['88'] });
  await T.start();
  const tokenA = (await ok(T.call('POST', '/api/tokens', { token: T.admin, body: { role: 'node', prefixes: ['88.100'] } }), 201)).secret;
  const tokenB = (await ok(T.call('POST', '/api/tokens', { token: T.admin, body: { role: 'node', prefixes: ['88.200'] } }), 201)).secret;
  const A = await node(t, dir, 'A', {
    homed: ['88.100'],
    upstream: { url: T.url, token: tokenA, timeoutMs: 1000, failuresToDown: 2, downCooldownMs: 1500 },
    sync: { retryMaxMs: 300, statsIntervalSeconds: 0 },
    cache: { notFoundTtlSeconds: 5 },
  });
  const B = await node(t, dir, 'B', { homed: ['88.200'], upstream: { url: T.url, token: tokenB } });
  await ok(T.call('POST', '/api/prefixes', { token: T.admin, body: { prefix: '88.100', owner: { name: 'Secondary node A' }, site: A.url } }), 201);
  await ok(T.call('POST', '/api/prefixes', { token: T.admin, body: { prefix: '88.200', owner: { name: 'Secondary node B' }, site: B.url } }), 201);
  await Promise.all([A.start(), B.start()]);
  const E = await node(t, dir, 'E', { homed: ['88.100.9'] });
  await E.start();
  await ok(A.call('POST', '/api/prefixes', { token: A.admin, body: { prefix: '88.100.9', owner: { name: 'Enterprise E' }, site: E.url } }), 201);

  await ok(B.call('PUT', '/api/handles/88.200/PART-1', { token: B.admin, body: [{ index: 1, type: 'URL', data: 'https://b/1' }] }));
  await ok(B.call('PUT', '/api/handles/88.200/SHORT', { token: B.admin, body: [{ index: 1, type: 'URL', data: 'https://b/s', ttl: 1 }] }));
  await ok(B.call('PUT', '/api/handles/88.200/FLIGHT', { token: B.admin, body: [{ index: 1, type: 'URL', data: 'https://b/f' }] }));
  await ok(E.call('PUT', '/api/handles/88.100.9/ENGINE-1', { token: E.admin, body: [{ index: 1, type: 'URL', data: 'https://e/1' }] }));

  const upstreamRequests = async () => (await ok(A.call('GET', '/readyz'))).upstream.origins[T.url]?.resolutions ?? 0;

  // B's identifier at A: A → T → B. E's: A → E (down).
  const b1 = await A.call('GET', '/api/handles/88.200/PART-1');
  t.equal(b1.status, 200, b1.text);
  t.equal(b1.json.values[0].data.value, 'https://b/1');
  t.match(b1.headers.get('cache-status'), /idnode; fwd=uri-miss; stored$/);
  const e1 = await A.call('GET', '/api/handles/88.100.9/ENGINE-1');
  t.equal(e1.json.handle, '88.100.9/ENGINE-1');
  const fromTop = await T.call('GET', '/api/handles/88.100.9/ENGINE-1');
  t.equal(fromTop.status, 200, 'T → A → E');
  t.equal((await B.call('GET', '/api/handles/88.100.9/ENGINE-1')).status, 200, 'B → T → A → E');

  const before = await upstreamRequests();
  for (let i = 0; i < 5; i++) t.equal((await A.call('GET', '/api/handles/88.200/PART-1')).headers.get('cache-status'), 'idnode; hit');
  t.equal(await upstreamRequests(), before, 'repeated resolution is answered from A’s cache');

  // A long ttl: on a busy machine the 200 requests may take longer than SHORT's one second.
  const flight = await Promise.all(Array.from({ length: 200 }, () => A.call('GET', '/api/handles/88.200/FLIGHT')));
  t.ok(flight.every((r) => r.status === 200));
  t.equal(await upstreamRequests(), before + 1, '200 concurrent requests, one upstream request');
  t.match((await A.call('GET', '/api/handles/88.200/SHORT')).headers.get('cache-status'), /stored$/, 'SHORT (ttl 1 s) cached at A');

  // A loop: A delegates 88.100.66 to T, and T sends 88.100.* to A.
  await ok(A.call('POST', '/api/prefixes', { token: A.admin, body: { prefix: '88.100.66', owner: { name: 'loop' }, site: T.url } }), 201);
  const loop = await A.call('GET', '/api/handles/88.100.66/x');
  t.equal(loop.status, 508, loop.text);
  t.equal(loop.json.responseCode, 6);

  // Sync: A's new prefix is pending until T accepts it.
  const p7 = await ok(A.call('POST', '/api/prefixes', { token: A.admin, body: { prefix: '88.100.7', owner: { name: 'Acme' } } }), 201);
  t.equal(p7.status, 'pending');
  const status = await eventually('88.100.7 accepted by T', async () => {
    const p = (await ok(A.call('GET', '/api/prefixes/88.100.7', { token: A.admin }))).status as string;
    return p === 'pending' ? undefined : p;
  });
  t.equal(status, 'active', "accepted by T (A's sync timer sends the report)");

  // T goes away: stale answers for what A cached, fast failures for the rest.
  await T.kill();
  // A's clock is its own: ask for SHORT until A's copy has expired. While fresh it is a hit that
  // never reaches T, so the first other answer is the stale one under test.
  const stale = await eventually('SHORT expired at A', async () => {
    const r = await A.call('GET', '/api/handles/88.200/SHORT');
    return r.headers.get('cache-status') === 'idnode; hit' ? undefined : r;
  });
  t.equal(stale.status, 200, stale.text);
  t.match(stale.headers.get('cache-status'), /detail=stale$/);
  t.match((await A.call('GET', '/api/handles/88.200/other-1')).json, { code: 'IDN_UPSTREAM_UNREACHABLE' });
  await A.call('GET', '/api/handles/88.200/other-2');
  const fast = await A.call('GET', '/api/handles/88.200/other-3');
  t.equal(fast.status, 503, 'marked down: fails fast');
  t.match(fast.json, { code: 'IDN_UNAVAILABLE', message: /marked down/ }, 'without trying T');
  t.equal((await A.call('GET', '/api/handles/88.100.9/ENGINE-1')).status, 200, 'what A can answer without T still works');

  // Reports made while T is down wait in A's outbox and arrive once, after T restarts.
  await ok(A.call('POST', '/api/prefixes', { token: A.admin, body: { prefix: '88.100.8', owner: { name: 'Beta' } } }), 201);
  await ok(A.call('PATCH', '/api/prefixes/88.100.7', { token: A.admin, body: { owner: { name: 'Acme Engines' } } }));
  // Wait until A's worker has tried (and failed) to send every pending report.
  const queued = await eventually('every pending report tried once', async () => {
    const ob = await ok(A.call('GET', '/api/sync/outbox?limit=1000', { token: A.admin }));
    return ob.reports.some((r: any) => r.state === 'pending' && r.attempts === 0) ? undefined : ob;
  });
  t.ok(queued.pending >= 2, 'queued while T is down');
  await A.kill('SIGTERM');
  await A.start(); // A restarts too: the outbox is in its SQLite file.
  await T.start();
  const pending = await eventually("A's outbox drained", async () => {
    const n = (await ok(A.call('GET', '/api/sync/outbox', { token: A.admin }))).pending as number;
    return n > 0 ? undefined : n;
  });
  t.equal(pending, 0, "A's outbox drained");
  t.equal((await ok(A.call('GET', '/api/prefixes/88.100.8', { token: A.admin }))).status, 'active');
  const reports = (await ok(T.call('GET', '/api/sync/reports?limit=1000', { token: T.admin }))).reports as any[];
  const prefixReports = reports.filter((r) => r.kind === 'prefix').map((r) => `${r.body.prefix} ${r.body.event}`);
  t.same(
    prefixReports.sort(),
    ['88.100.66 created', '88.100.7 changed', '88.100.7 created', '88.100.8 created', '88.100.9 created'],
    'every report once: no loss, no duplicates',
  );
  t.equal(new Set(reports.map((r) => r.idempotencyKey)).size, reports.length);
});
