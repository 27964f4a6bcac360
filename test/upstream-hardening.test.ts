/**
 * Lying and slow upstreams: real HTTP servers on port 0 play the other node. Nothing here
 * waits for time to pass: the slow servers drip on their own timer, the node's deadline is
 * small, and the test waits for server events (request arrived, socket closed).
 */
import t, { type Test } from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { parseIdentifier } from '../src/identifier/index.js';
import { createPrefixes } from '../src/registry/prefixes.js';
import { createResolver } from '../src/resolver/index.js';
import { openStore } from '../src/store/index.js';
import { createUpstreamClient, type UpstreamClient } from '../src/upstream/client.js';
import { createRouter } from '../src/upstream/routing.js';
import { ADMIN, listenLocal, startNode, tempDir } from './helpers.js';

/** A real HTTP server on port 0; counts requests per identifier and reports closed sockets. */
async function fakeNode(t: Test, handler: (req: IncomingMessage, res: ServerResponse, id: string) => void) {
  const seen: string[] = [];
  const socketClosed: Array<() => void> = [];
  const server = createServer((req, res) => {
    const id = decodeURIComponent(req.url!.split('?')[0]!.slice('/api/handles/'.length));
    seen.push(id);
    handler(req, res, id);
  });
  server.on('connection', (socket) => socket.once('close', () => socketClosed.shift()?.()));
  return {
    url: await listenLocal(t, server),
    /** Identifiers asked, in order. */
    seen,
    asked: (id: string) => seen.filter((s) => s === id).length,
    /** Resolves when the next connection to this server closes. */
    nextSocketClose: () => new Promise<void>((r) => socketClosed.push(r)),
  };
}

function value(index: number, extra: Record<string, unknown> = {}) {
  return { index, type: 'URL', data: { format: 'string', value: `https://x/${index}` }, ttl: 86400, timestamp: '2026-01-01T00:00:00Z', ...extra };
}

function answer(handle: string, values: unknown = [value(1)]) {
  return JSON.stringify({ responseCode: 1, handle, values });
}

function send(res: ServerResponse, body: string, status = 200) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body);
}

/**
 * Headers at once, then the body one byte per tick of the server's own timer: each byte
 * restarts undici's bodyTimeout. Leading spaces are valid JSON, so the body would parse if
 * it ever finished (after minutes); only a total deadline stops it. Counts the bytes sent.
 */
function drip(res: ServerResponse, body: string, sent: { bytes: number }) {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.flushHeaders();
  const text = ' '.repeat(5000) + body;
  let i = 0;
  const next = () => {
    if (i >= text.length) return void (clearInterval(timer), res.end());
    res.write(text[i++]);
    sent.bytes++;
  };
  const timer = setInterval(next, 20);
  next();
  res.on('close', () => clearInterval(timer));
}

t.test('a slow-drip body is cut at upstream.deadlineMs: 504, the socket is released, the node still answers', async (t) => {
  const sent = { bytes: 0 };
  const up = await fakeNode(t, (_req, res, id) => {
    if (id === '77.1/SLOW') return drip(res, answer(id), sent);
    send(res, answer(id));
  });
  // timeoutMs is far longer than the test: only the deadline can end the slow request.
  const a = await startNode(t, { upstream: { url: up.url, timeoutMs: 600_000, deadlineMs: 300 } });
  const closed = up.nextSocketClose();
  const r = await a.call('GET', '/api/handles/77.1/SLOW');
  t.equal(r.status, 504, r.text);
  t.match(r.json, { responseCode: 2, code: 'IDN_UPSTREAM_TIMEOUT', handle: '77.1/SLOW', message: /within 300 ms \(config upstream\.deadlineMs\)/ });
  await closed;
  t.pass('the node closed the connection to the slow upstream');
  t.ok(sent.bytes > 0, `the headers and ${sent.bytes} body bytes had arrived: the cut came in the body phase`);
  t.equal(a.node.upstream.stats()[up.url]!.inFlight, 0, 'nothing left in flight');
  t.equal(a.node.upstream.stats()[up.url]!.state, 'up', 'one timeout does not mark the origin down');

  const ok = await a.call('GET', '/api/handles/77.1/OK');
  t.equal(ok.status, 200, 'the node still forwards other requests');
  t.equal(ok.json.handle, '77.1/OK');
  t.equal((await a.call('GET', '/api/handles/88.100/none')).status, 404, 'and answers from its own store');
  t.equal((await a.call('GET', '/api/handles/77.1/SLOW')).status, 504, 'a timeout is not cached: asked again, cut again');
  t.equal(up.asked('77.1/SLOW'), 2);
});

t.test('the deadline also bounds a node that never sends headers, and sync reports', async (t) => {
  const up = await fakeNode(t, (req, res, id) => {
    if (req.method === 'GET' && id === '77.1/HUNG') return; // never answers
    if (req.method === 'POST') return drip(res, '{"responseCode":1,"outcome":"accepted"}', { bytes: 0 });
    send(res, answer(id));
  });
  const a = await startNode(t, {
    upstream: { url: up.url, token: 'x', timeoutMs: 600_000, deadlineMs: 300, failuresToDown: 100 },
    sync: { statsIntervalSeconds: 0, retryMaxMs: 100_000 },
  });
  const hung = await a.call('GET', '/api/handles/77.1/HUNG');
  t.equal(hung.status, 504);
  t.match(hung.json, { code: 'IDN_UPSTREAM_TIMEOUT', message: /upstream\.deadlineMs/ });

  await a.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.7', owner: { name: 'Acme' } } });
  await a.node.syncWorker!.tick();
  const outbox = (await a.call('GET', '/api/sync/outbox', { token: ADMIN })).json;
  t.match(outbox.reports[0], { state: 'pending', lastError: /upstream\.deadlineMs/ }, 'a slow sync receiver is cut too; the report is retried later');
});

/** A client whose deadline (300 ms) always comes first, recording each request's failure code. */
function deadlineClient(t: Test, failures: Array<string | undefined>): UpstreamClient {
  const upstream = createUpstreamClient({
    timeoutMs: 600_000,
    deadlineMs: 300,
    maxInFlight: 8,
    maxResponseBytes: 1 << 20,
    failuresToDown: 100,
    downCooldownMs: 1000,
    onResult: (_base, _ms, failure) => failures.push(failure),
  });
  t.teardown(() => upstream.close());
  return upstream;
}

t.test('one deadline timer cuts every overdue request, leaves the answered ones, and re-arms', async (t) => {
  const up = await fakeNode(t, (_req, res, id) => {
    if (id.startsWith('77.1/HUNG')) return; // never answers
    send(res, answer(id));
  });
  const failures: Array<string | undefined> = [];
  const upstream = deadlineClient(t, failures);
  const opts = { hops: 0, auth: false, checkValues: () => undefined };
  const ask = (id: string) =>
    upstream.resolve(up.url, id, opts).then(
      (a) => ({ ok: true as const, handle: a.handle }),
      (err: { code?: string; message?: string }) => ({ ok: false as const, code: err.code, message: err.message }),
    );

  const closed = [up.nextSocketClose(), up.nextSocketClose(), up.nextSocketClose()];
  const wave = await Promise.all([ask('77.1/HUNG-1'), ask('77.1/OK-1'), ask('77.1/HUNG-2'), ask('77.1/HUNG-3'), ask('77.1/OK-2')]);
  t.same(
    wave.map((r) => (r.ok ? r.handle : r.code)),
    ['IDN_UPSTREAM_TIMEOUT', '77.1/OK-1', 'IDN_UPSTREAM_TIMEOUT', 'IDN_UPSTREAM_TIMEOUT', '77.1/OK-2'],
    'the three hung requests are cut, the two answered ones are not',
  );
  t.match(wave[0], { message: /did not send its whole answer within 300 ms \(config upstream\.deadlineMs\)/ });
  await Promise.all(closed);
  t.pass('the three connections the node stopped waiting on are closed');
  t.equal(upstream.stats()[up.url]!.inFlight, 0, 'nothing left in flight');

  // Nothing was in flight: the next request arms the timer again.
  t.match(await ask('77.1/HUNG-4'), { ok: false, code: 'IDN_UPSTREAM_TIMEOUT' }, 'a later hung request is cut too');
  t.match(await ask('77.1/OK-3'), { ok: true, handle: '77.1/OK-3' }, 'and the origin still answers');
  t.equal(failures.filter((f) => f === 'IDN_UPSTREAM_TIMEOUT').length, 4);
  t.equal(upstream.stats()[up.url]!.state, 'up');
});

t.test('a stale cached answer is served when the slow upstream hits the deadline', async (t) => {
  const dir = tempDir(t);
  let clock = Date.parse('2026-06-01T00:00:00Z');
  let slow = false;
  const body = answer('77.1/S', [value(1, { ttl: 60 })]);
  const up = await fakeNode(t, (_req, res) => (slow ? drip(res, body, { bytes: 0 }) : send(res, body)));
  const failures: Array<string | undefined> = [];
  const store = openStore(join(dir, 'idnode.db'));
  t.teardown(() => store.close());
  const router = await createRouter({ store, homed: ['88.100'], upstreamUrl: up.url });
  const prefixes = createPrefixes({
    store,
    router,
    homed: ['88.100'],
    baseUrl: 'http://127.0.0.1:1',
    hasUpstream: true,
    startedAt: '2026-01-01T00:00:00Z',
  });
  const upstream = deadlineClient(t, failures);
  const resolver = createResolver({
    store,
    router,
    prefixes,
    upstream,
    cacheMaxBytes: 1 << 20,
    notFoundTtlSeconds: 5,
    staleWindowSeconds: 3600,
    now: () => clock,
  });
  const id = parseIdentifier('77.1/S');
  const opts = { bypassCache: false, privateAccess: false, hops: 0 };

  const first = await resolver.resolve(id, opts);
  t.equal(first.source, 'upstream');
  t.equal(first.entry.body, body);
  clock += 61_000; // past the ttl, inside the stale window
  slow = true;
  const closed = up.nextSocketClose();
  const stale = await resolver.resolve(id, opts);
  t.equal(stale.source, 'cache');
  t.equal(stale.cacheStatus, 'idnode; hit; ttl=-1; detail=stale');
  t.equal(stale.entry.body, body, 'the answer cached before');
  t.same(failures, [undefined, 'IDN_UPSTREAM_TIMEOUT'], 'served stale because the deadline cut the upstream request');
  await closed;
  t.equal(resolver.stats().stale, 1);
  await t.rejects(resolver.resolve(id, { ...opts, bypassCache: true }), { code: 'IDN_UPSTREAM_TIMEOUT' }, 'auth=true never gets a stale answer');
});

t.test('an answer for another identifier is 502 and never cached', async (t) => {
  const lies: Record<string, string> = {
    '77.1/X': answer('77.1/OTHER'),
    '77.1/Case': answer('77.1/CASE'),
    '0.NA/77.1': answer('0.na/77.1'),
    '0.NA/77.2': answer('77.2'),
    '0.NA/77.3': answer('0.NA/77.4'),
    '77.1/Bad': answer('no slash here!'),
    '77.1/Long': answer(`77.1/${'L'.repeat(1000)}`),
  };
  const up = await fakeNode(t, (_req, res, id) => {
    if (id === '77.1/Gone') return send(res, JSON.stringify({ responseCode: 100, handle: '77.1/Elsewhere', message: 'not here', code: 'IDN_NOT_FOUND' }), 404);
    send(res, lies[id] ?? answer(id));
  });
  const a = await startNode(t, { upstream: { url: up.url, failuresToDown: 1000 } });
  for (let round = 1; round <= 2; round++) {
    const r = await a.call('GET', '/api/handles/77.1/X');
    t.equal(r.status, 502, `round ${round}`);
    t.match(r.json, { responseCode: 2, code: 'IDN_UPSTREAM_BAD_ANSWER', handle: '77.1/X', message: /answered for "77\.1\/OTHER" when asked for 77\.1\/X/ });
    t.equal(up.asked('77.1/X'), round, 'each request goes upstream again: nothing was cached');
  }
  const gone = await a.call('GET', '/api/handles/77.1/Gone');
  t.equal(gone.status, 502, 'a not-found answer naming another identifier is refused too');
  t.match(gone.json, { code: 'IDN_UPSTREAM_BAD_ANSWER', message: /"77\.1\/Elsewhere"/ });
  t.match((await a.call('GET', '/api/handles/77.1/Bad')).json, { code: 'IDN_UPSTREAM_BAD_ANSWER', message: /"no slash here!"/ }, 'not an identifier at all');
  const long = await a.call('GET', '/api/handles/77.1/Long');
  t.match(
    long.json,
    { code: 'IDN_UPSTREAM_BAD_ANSWER', message: /"77\.1\/L{195}…" when asked for 77\.1\/Long$/ },
    'a long foreign identifier is clipped in the message',
  );

  const cased = await a.call('GET', '/api/handles/77.1/Case');
  t.equal(cased.status, 200, 'ASCII case does not matter');
  t.equal(cased.json.handle, '77.1/Case', 'relayed naming the identifier as the client spelt it');
  t.equal((await a.call('GET', '/api/handles/77.1')).status, 200, 'prefix request 0.NA/77.1, answered as 0.na/77.1');
  t.equal((await a.call('GET', '/api/handles/77.2')).status, 200, 'prefix request 0.NA/77.2, answered with the bare prefix 77.2');
  const other = await a.call('GET', '/api/handles/77.3');
  t.equal(other.status, 502, 'a prefix request answered for another prefix');
  t.match(other.json, { handle: '0.NA/77.3', message: /"0\.NA\/77\.4" when asked for 0\.NA\/77\.3/ });
  t.ok(up.seen.includes('0.NA/77.1'), 'prefix requests are forwarded as 0.NA/<prefix>');
});

t.test('invalid values are 502 naming the value and field, never cached', async (t) => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['no-ttl', [value(1), { index: 2, type: 'URL', data: 'x', timestamp: '2026-01-01T00:00:00Z' }], /values\[1\]\.ttl is missing/],
    ['index-text', [value(1, { index: '1' })], /values\[0\]\.index must be an integer from 1 to 4294967295; got "1"/],
    ['index-zero', [value(0)], /values\[0\]\.index must be an integer/],
    ['index-big', [value(2 ** 32)], /values\[0\]\.index must be an integer/],
    ['index-dup', [value(1), value(2), value(1)], /values\[2\]\.index 1 appears more than once/],
    ['format', [value(1, { data: { format: 'weird', value: 'x' } })], /values\[0\]\.data\.format must be one of string, base64/],
    ['hex', [value(1, { data: { format: 'hex', value: 'xyz' } })], /values\[0\]\.data\.value must be an even number of hex digits/],
    ['data-number', [value(1, { data: 7 })], /values\[0\]\.data must be a string or/],
    ['no-type', [{ index: 1, data: 'x', ttl: 5, timestamp: '2026-01-01T00:00:00Z' }], /values\[0\]\.type must be/],
    ['ttl-negative', [value(1, { ttl: -5 })], /values\[0\]\.ttl must be seconds/],
    ['ttl-fraction', [value(1, { ttl: 1.5 })], /values\[0\]\.ttl must be seconds/],
    ['no-timestamp', [{ index: 1, type: 'URL', data: 'x', ttl: 5 }], /values\[0\]\.timestamp is missing/],
    ['timestamp', [value(1, { timestamp: 'yesterday' })], /values\[0\]\.timestamp must be an ISO-8601 time/],
    ['timestamp-number', [value(1, { timestamp: 1 })], /values\[0\]\.timestamp must be an ISO-8601 time/],
    ['permissions', [value(1, { permissions: '11' })], /values\[0\]\.permissions must be 4 characters of 0\/1/],
    ['references', [value(1, { references: 'x' })], /values\[0\]\.references must be a list/],
    ['reference', [value(1, { references: [{ handle: '88.1/x' }] })], /values\[0\]\.references\[0\] must be/],
    ['unknown-field', [value(1, { colour: 'red' })], /values\[0\] has an unknown field "colour"/],
    ['not-object', [value(1), 'URL'], /values\[1\] must be an object/],
    ['object-values', { 1: value(1) }, /values is an object, not a list/],
    ['string-values', 'none', /values is a string, not a list/],
    ['null-values', null, /values is null, not a list/],
  ];
  const bodies = new Map(cases.map(([name, values]) => [`77.1/${name}`, answer(`77.1/${name}`, values)]));
  const up = await fakeNode(t, (_req, res, id) => send(res, bodies.get(id) ?? answer(id)));
  // Each refused answer counts against the breaker; keep the origin up for the whole table.
  const a = await startNode(t, { upstream: { url: up.url, failuresToDown: 1000 } });
  for (const [name, , why] of cases) {
    const r = await a.call('GET', `/api/handles/77.1/${name}`);
    t.equal(r.status, 502, name);
    t.match(r.json, { responseCode: 2, code: 'IDN_UPSTREAM_BAD_ANSWER', handle: `77.1/${name}`, message: why }, name);
    t.equal(r.headers.get('cache-control'), null, `${name}: no Cache-Control (was max-age=NaN without ttl)`);
    t.equal((await a.call('GET', `/api/handles/77.1/${name}`)).status, 502, `${name}: again`);
    t.equal(up.asked(`77.1/${name}`), 2, `${name}: not cached, asked upstream again`);
  }
  const metrics = (await a.call('GET', '/metrics')).text;
  t.match(
    metrics,
    new RegExp(`idnode_upstream_errors_total\\{origin="${up.url.replace(/[.]/g, '\\.')}",code="IDN_UPSTREAM_BAD_ANSWER"\\} ${cases.length * 2}`),
    'counted as upstream failures',
  );
});

t.test('a valid answer is still relayed byte for byte, and cached', async (t) => {
  // Pretty-printed, non-ASCII, every optional field, an absolute-expiry ttl as idnode itself stores.
  const body = JSON.stringify(
    {
      responseCode: 1,
      handle: '77.1/Valid-Ünïcode',
      values: [
        { index: 1, type: 'URL', data: { format: 'string', value: 'https://x/ü' }, ttl: 3600, timestamp: '2026-01-01T00:00:00.123+08:00' },
        {
          index: 2,
          type: 'note',
          data: 'bare string',
          ttl: '2099-01-01T00:00:00Z',
          timestamp: '2026-01-01T00:00:00Z',
          permissions: '1110',
          references: [{ handle: '77.1/other', index: 1 }],
        },
        {
          index: 3,
          type: 'HS_ADMIN',
          data: { format: 'admin', value: { handle: '0.NA/77.1', index: 200, permissions: '111111111111' } },
          ttl: 7200,
          timestamp: '2026-01-01T00:00:00Z',
        },
        { index: 4, type: 'blob', data: { format: 'base64', value: 'aGk=' }, ttl: 7200, timestamp: '2026-01-01T00:00:00Z', permissions: '1100' },
        {
          index: 5,
          type: 'HS_VLIST',
          data: { format: 'vlist', value: [{ handle: '77.1/a', index: 1 }] },
          ttl: 7200,
          timestamp: '2026-01-01T00:00:00Z',
          references: [],
        },
      ],
    },
    null,
    2,
  );
  const up = await fakeNode(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', etag: '"v-1"' });
    res.end(body);
  });
  const a = await startNode(t, { upstream: { url: up.url } });
  const r = await a.call('GET', '/api/handles/77.1/Valid-Ünïcode');
  t.equal(r.status, 200, r.text);
  t.equal(r.text, body, 'the same bytes');
  t.equal(r.headers.get('etag'), '"v-1"');
  t.equal(r.headers.get('cache-control'), 'max-age=3600', 'the smallest ttl');
  const again = await a.call('GET', '/api/handles/77.1/valid-Ünïcode');
  t.equal(again.headers.get('cache-status'), 'idnode; hit');
  t.equal(again.text, body.replace('"handle": "77.1/Valid-Ünïcode"', '"handle": "77.1/valid-Ünïcode"'), 'the same bytes but the spelling asked');
  t.equal(again.headers.get('content-length'), String(Buffer.byteLength(again.text)));
  t.equal(up.seen.length, 1);
});

t.test('refused answers count against the breaker like transport failures', async (t) => {
  const up = await fakeNode(t, (_req, res) => send(res, answer('77.1/OTHER')));
  const a = await startNode(t, { upstream: { url: up.url, failuresToDown: 2, downCooldownMs: 600_000 } });
  t.equal((await a.call('GET', '/api/handles/77.1/A')).status, 502);
  t.equal((await a.call('GET', '/api/handles/77.1/B')).status, 502);
  const fast = await a.call('GET', '/api/handles/77.1/C');
  t.equal(fast.status, 503, 'marked down after two lies in a row');
  t.match(fast.json, { code: 'IDN_UNAVAILABLE', message: /marked down after 2 failures/ });
  t.equal(up.seen.length, 2, 'the third request never reached the lying node');
});
