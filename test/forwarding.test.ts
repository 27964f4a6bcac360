import t, { type Test } from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ADMIN, type Client, sampleValues, startNode, testClock } from './helpers.js';

/** A promise and the function that resolves it: tests wait for events, never for time. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** A real HTTP server on port 0 with a handler of the test's choosing; counts requests. */
async function fakeNode(t: Test, handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const seen: Array<{ url: string; hops: string | undefined }> = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url!, hops: req.headers['idn-hop-count'] as string | undefined });
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  t.teardown(close);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close };
}

function handleAnswer(handle: string, ttl = 86400) {
  return JSON.stringify({
    responseCode: 1,
    handle,
    values: [{ index: 1, type: 'URL', data: { format: 'string', value: `https://x/${handle}` }, ttl, timestamp: '2026-01-01T00:00:00Z' }],
  });
}

/** Answers with `body`; with `held`, only once the test resolves it (a slow upstream, released by an event). */
function answerWith(body: (url: string) => string, status = 200, held?: Promise<void>) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const answer = () => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-status': 'upstream; hit' });
      res.end(body(req.url!));
    };
    if (held === undefined) answer();
    else void held.then(answer);
  };
}

const handleOf = (url: string) => decodeURIComponent(url.slice('/api/handles/'.length).split('?')[0]!);

async function put(c: Client, id: string, values: unknown = sampleValues) {
  const r = await c.call('PUT', `/api/handles/${id}`, { token: ADMIN, body: values });
  if (r.status !== 200) throw new Error(r.text);
}

t.test('forwards up and down, caches by ttl, relays Handle errors, keeps hop counts', async (t) => {
  const top = await startNode(t, { homed: ['88.200'] });
  const enterprise = await startNode(t, { homed: ['88.100.9'] });
  // No sync worker: the report about 88.100.9 stays in the outbox for /readyz to count (its timer made that a race).
  const a = await startNode(t, { homed: ['88.100'], upstream: { url: top.url } }, { runSync: false });
  await put(top, '88.200/B-1');
  await put(top, '88.200/Zero', [{ index: 1, type: 'URL', data: 'https://z', ttl: 0 }]);
  await put(enterprise, '88.100.9/E-1');
  t.equal((await a.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.9', owner: { name: 'E' }, site: enterprise.url } })).status, 201);

  const first = await a.call('GET', '/api/handles/88.200/b-1');
  t.equal(first.status, 200, first.text);
  t.equal(first.json.handle, '88.200/b-1', 'the spelling the client sent, relayed through both nodes');
  t.equal(first.headers.get('cache-status'), 'idnode; fwd=uri-miss; stored, idnode; fwd=uri-miss; stored', "the upstream's entry first, ours last");
  t.equal(first.headers.get('cache-control'), 'max-age=3600', 'the smallest ttl');
  t.equal(first.headers.get('etag'), (await top.call('GET', '/api/handles/88.200/B-1')).headers.get('etag'), "the upstream's ETag for the same bytes is kept");
  const upstreamRequests = () => a.node.upstream.stats()[top.url]!.resolutions;
  t.equal(upstreamRequests(), 1);
  const second = await a.call('GET', '/api/handles/88.200/B-1');
  t.equal(second.headers.get('cache-status'), 'idnode; hit', 'answered from the cache (fast path)');
  t.equal(second.text, first.text.replace('"88.200/b-1"', '"88.200/B-1"'), 'the cached bytes, naming the spelling asked');
  t.equal((await a.call('GET', '/api/handles/88.200/B-1?type=URL')).headers.get('cache-status'), 'idnode; hit', 'filters apply to the cached answer');
  t.equal(upstreamRequests(), 1, 'no further upstream request');
  const bypass = await a.call('GET', '/api/handles/88.200/B-1?auth=true');
  t.equal(bypass.headers.get('cache-status'), 'idnode; fwd=bypass, idnode; fwd=bypass');
  t.equal(upstreamRequests(), 2);

  const down = await a.call('GET', '/api/handles/88.100.9/E-1');
  t.equal(down.status, 200, 'forwarded down to the delegated site');
  t.equal(down.json.handle, '88.100.9/E-1');
  const site = await a.call('GET', '/api/handles/0.NA/88.100.9');
  t.equal(site.json.values[0].data.value.attributes[0].value, enterprise.url, '0.NA/<prefix> names the site');

  await a.call('GET', '/api/handles/88.200/Zero');
  await a.call('GET', '/api/handles/88.200/Zero');
  t.equal(upstreamRequests(), 4, 'ttl 0 is never cached');

  const missing = await a.call('GET', '/api/handles/88.200/none');
  t.equal(missing.status, 404);
  t.match(missing.json, { responseCode: 100, code: 'IDN_NOT_FOUND', handle: '88.200/none' }, 'relayed as it is');
  t.equal((await a.call('GET', '/api/handles/88.200/none')).headers.get('cache-status'), 'idnode; hit', 'not-found is cached briefly');

  const unrouted = await a.call('GET', '/api/handles/99.1/x');
  t.match(unrouted.json, { responseCode: 301, code: 'IDN_NOT_RESPONSIBLE' }, "the top node's 301 is relayed");
  t.equal(unrouted.status, 400);
  const before = upstreamRequests();
  await a.call('GET', '/api/handles/99.1/x');
  t.equal(upstreamRequests(), before + 1, 'errors are never cached');

  const batch = await a.call('POST', '/api/resolve', { body: { handles: ['88.200/B-1', '88.100.9/E-1', '88.200/none'] } });
  t.same(
    batch.json.results.map((r: any) => r.responseCode),
    [1, 1, 100],
  );

  const hopped = await a.call('GET', '/api/handles/88.200/fresh-one', { headers: { 'idn-hop-count': '8' } });
  t.equal(hopped.status, 508);
  t.match(hopped.json, { responseCode: 6, code: 'IDN_HOP_LIMIT' });
  t.match((await a.call('GET', '/api/handles/88.200/x', { headers: { 'idn-hop-count': 'many' } })).json, { code: 'IDN_BAD_REQUEST', message: /idn-hop-count/ });
  const ready = await a.call('GET', '/readyz');
  t.match(ready.json.upstream, { url: top.url, origins: { [top.url]: { state: 'up' } }, pendingReports: 1 });
});

t.test("an upstream's ETag is reused only when it is a well-formed strong tag", async (t) => {
  const tags: Record<string, string> = { '77.1/strong': '"up-1"', '77.1/weak': 'W/"up-2"', '77.1/bad': 'no-quotes' };
  const up = await fakeNode(t, (req, res) => {
    const h = handleOf(req.url!);
    res.writeHead(200, { 'content-type': 'application/json', etag: tags[h]! });
    res.end(handleAnswer(h));
  });
  const a = await startNode(t, { upstream: { url: up.url } });
  t.equal((await a.call('GET', '/api/handles/77.1/strong')).headers.get('etag'), '"up-1"');
  for (const h of ['77.1/weak', '77.1/bad']) {
    const r = await a.call('GET', `/api/handles/${h}`);
    t.match(r.headers.get('etag'), /^"[\w-]{27}"$/, `${h}: our own SHA-1 of the bytes`);
    t.equal((await a.call('GET', `/api/handles/${h}`, { headers: { 'if-none-match': r.headers.get('etag')! } })).status, 304);
  }
});

t.test('a loop in delegations stops at the hop limit', async (t) => {
  const b = await startNode(t, { homed: ['88.300'] });
  const a = await startNode(t, { homed: ['88.100'], upstream: { url: b.url } });
  await b.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.300.5', owner: { name: 'loop' }, site: a.url } });
  const r = await a.call('GET', '/api/handles/88.300.5/x');
  t.equal(r.status, 508, r.text);
  t.match(r.json, { responseCode: 6, code: 'IDN_HOP_LIMIT', message: /forwarded 8 times/ });
});

t.test('concurrent misses for one identifier make one upstream request', async (t) => {
  // The upstream answers ONE only once all 200 requests have reached the node (and so joined the
  // flight), and TWO only once all 5 forwarded requests reached it (joining a flight, they would not).
  const allArrived = deferred();
  const fiveForwarded = deferred();
  const answer = (held: Promise<void>) => answerWith((url) => handleAnswer(handleOf(url)), 200, held);
  const up = await fakeNode(t, (req, res) => {
    if (!req.url!.endsWith('/TWO')) return answer(allArrived.promise)(req, res);
    if (up.seen.filter((s) => s.url.endsWith('/TWO')).length === 5) fiveForwarded.resolve();
    answer(fiveForwarded.promise)(req, res);
  });
  const a = await startNode(t, { upstream: { url: up.url } });
  let arrived = 0;
  // Listeners run in order: the node's own handler has taken the request when this one runs.
  a.node.app.server.on('request', () => void (++arrived === 200 && allArrived.resolve()));
  const answers = await Promise.all(Array.from({ length: 200 }, () => a.call('GET', '/api/handles/77.1/ONE')));
  t.ok(answers.every((r) => r.status === 200 && r.json.handle === '77.1/ONE'));
  t.equal(up.seen.length, 1, 'one upstream request for 200 concurrent misses');
  t.equal(up.seen[0]!.hops, '1', 'the hop count is sent');
  t.equal(up.seen[0]!.url, '/api/handles/77.1/ONE');
  await Promise.all(Array.from({ length: 5 }, () => a.call('GET', '/api/handles/77.1/TWO', { headers: { 'idn-hop-count': '1' } })));
  t.equal(up.seen.length, 6, 'requests that arrived forwarded never join a flight');
  t.ok(up.seen.slice(1).every((s) => s.hops === '2'));
});

t.test('bad upstreams: hung → 504 in time, garbage → 502, too large → 502, in-flight bound → 503', async (t) => {
  const gaveUp = deferred();
  const hung = await fakeNode(t, (req) => void req.socket.once('close', () => gaveUp.resolve()));
  const a = await startNode(t, { upstream: { url: hung.url, timeoutMs: 300 } });
  const r = await a.call('GET', '/api/handles/77.1/H');
  t.equal(r.status, 504);
  t.match(r.json, { responseCode: 2, code: 'IDN_UPSTREAM_TIMEOUT', handle: '77.1/H', message: /300 ms/ });
  t.equal(hung.seen.length, 1, 'the request reached the hung upstream');
  await gaveUp.promise; // the node closed the connection it stopped waiting on

  for (const [name, handler, why] of [
    ['text', answerWith(() => 'hello, world'), /not JSON/],
    ['array', answerWith(() => '[1,2]'), /not a JSON object/],
    ['no code', answerWith(() => '{"handle":"x"}'), /no responseCode/],
    ['no values', answerWith(() => '{"responseCode":1,"handle":"x"}'), /without handle and values/],
    ['error as 200', answerWith(() => '{"responseCode":100}'), /error responseCode 100 with HTTP 200/],
    ['success as 500', answerWith((u) => handleAnswer(handleOf(u)), 500), /responseCode 1 with HTTP 500/],
  ] as const) {
    const up = await fakeNode(t, handler);
    const b = await startNode(t, { upstream: { url: up.url } });
    const g = await b.call('GET', '/api/handles/77.1/G');
    t.equal(g.status, 502, name);
    t.match(g.json, { responseCode: 2, code: 'IDN_UPSTREAM_BAD_ANSWER', message: why }, name);
  }

  const big = await fakeNode(
    t,
    answerWith((u) => handleAnswer(handleOf(u)).replace('https://x/', `https://x/${'y'.repeat(5000)}`)),
  );
  const c = await startNode(t, { upstream: { url: big.url, maxResponseBytes: 2048 } });
  t.match((await c.call('GET', '/api/handles/77.1/BIG')).json, { code: 'IDN_UPSTREAM_BAD_ANSWER', message: /more than 2048 bytes.*upstream.maxResponseBytes/ });

  // The slow upstream holds its answers until each of the 6 requests is either held there or answered.
  const accounted = deferred();
  let settled = 0;
  let slowSeen = () => 0;
  const check = () => void (slowSeen() + settled === 6 && accounted.resolve());
  const holdSlow = answerWith((u) => handleAnswer(handleOf(u)), 200, accounted.promise);
  const slow = await fakeNode(t, (req, res) => {
    holdSlow(req, res);
    check();
  });
  slowSeen = () => slow.seen.length;
  const d = await startNode(t, { upstream: { url: slow.url, maxInFlight: 2 } });
  const many = await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      d.call('GET', `/api/handles/77.1/S-${i}`).finally(() => {
        settled++;
        check();
      }),
    ),
  );
  const busy = many.filter((m) => m.status === 503);
  t.equal(many.filter((m) => m.status === 200).length, 2, 'the bound lets two through');
  t.equal(busy.length, 4, 'the rest are refused at once, not queued');
  t.match(busy[0]!.json, { responseCode: 3, code: 'IDN_UNAVAILABLE', message: /upstream.maxInFlight/ });
  t.equal(busy[0]!.headers.get('retry-after'), '1');
});

t.test('upstream down: stale answers within the window, then fast failures, then a probe', async (t) => {
  let alive = true;
  const up = await fakeNode(t, (req, res) => {
    if (!alive) return req.socket.destroy();
    answerWith((u) => handleAnswer(handleOf(u), 1))(req, res);
  });
  const clock = testClock();
  const a = await startNode(t, { upstream: { url: up.url, failuresToDown: 2, downCooldownMs: 400 }, cache: { staleWindowSeconds: 60 } }, { now: clock.now });
  t.equal((await a.call('GET', '/api/handles/77.1/S')).status, 200);
  t.equal((await a.call('GET', '/api/handles/77.1/S')).headers.get('cache-status'), 'idnode; hit');
  alive = false;
  clock.advance(1100); // past the answer's ttl of 1 s
  const stale = await a.call('GET', '/api/handles/77.1/S');
  t.equal(stale.status, 200, 'an expired answer is served when the upstream fails');
  t.match(stale.headers.get('cache-status'), /^idnode; hit; ttl=-\d+; detail=stale$/);
  t.equal(stale.json.handle, '77.1/S');
  const bypass = await a.call('GET', '/api/handles/77.1/S?auth=true');
  t.equal(bypass.status, 502, 'auth=true never gets a stale answer');
  t.match(bypass.json, { code: 'IDN_UPSTREAM_UNREACHABLE' });
  const reached = up.seen.length;
  const fast = await a.call('GET', '/api/handles/77.1/never-cached');
  t.equal(fast.status, 503, 'marked down after repeated failures: fail fast');
  t.match(fast.json, { responseCode: 3, code: 'IDN_UNAVAILABLE', message: /marked down after 2 failures/ });
  t.ok(Number(fast.headers.get('retry-after')) >= 1);
  t.equal(up.seen.length, reached, 'failing fast: no request went to the upstream');
  t.equal((await a.call('GET', '/api/handles/77.1/S')).headers.get('cache-status')!.endsWith('detail=stale'), true, 'stale while down');
  t.equal(a.node.upstream.stats()[up.url]!.state, 'down');
  alive = true;
  clock.advance(450); // past the 400 ms cool-down
  const back = await a.call('GET', '/api/handles/77.1/never-cached');
  t.equal(back.status, 200, 'the probe after the cool-down succeeds');
  t.equal(a.node.upstream.stats()[up.url]!.state, 'up');
});

t.test('sync: prefixes stay pending until the upstream accepts; rejected outside the delegation; idempotent', async (t) => {
  const top = await startNode(t, { homed: ['88'] });
  const token = (await top.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'node', prefixes: ['88.100'] } })).json.secret as string;
  const a = await startNode(t, { homed: ['88.100', '66.1'], upstream: { url: top.url, token }, sync: { statsIntervalSeconds: 0, retryMaxMs: 200 } });
  const created = await a.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.7', owner: { name: 'Acme' } } });
  t.equal(created.json.status, 'pending');
  await a.node.syncWorker!.tick();
  t.equal((await a.call('GET', '/api/prefixes/88.100.7', { token: ADMIN })).json.status, 'active', 'accepted by the upstream');
  const reports = await top.call('GET', '/api/sync/reports', { token: ADMIN });
  t.equal(reports.json.reports.length, 1);
  t.match(reports.json.reports[0], { kind: 'prefix', outcome: 'accepted', body: { prefix: '88.100.7', event: 'created', owner: { name: 'Acme' } } });

  await a.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '66.1.2', owner: { name: 'Elsewhere' } } });
  await a.node.syncWorker!.tick();
  t.equal((await a.call('GET', '/api/prefixes/66.1.2', { token: ADMIN })).json.status, 'pending', 'rejected: stays pending');
  const outbox = await a.call('GET', '/api/sync/outbox', { token: ADMIN });
  t.match(
    outbox.json.reports.find((r: any) => r.body.prefix === '66.1.2'),
    { state: 'rejected', lastError: /HTTP 403: .*outside the reporter's delegation/ },
  );
  t.equal(outbox.json.pending, 0);
  const reg = (await a.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'registrar', prefixes: ['66.1.2'] } })).json.secret;
  t.match((await a.call('PUT', '/api/handles/66.1.2/x', { token: reg, body: sampleValues })).json, {
    code: 'IDN_PREFIX_NOT_ACTIVE',
    message: /pending.*upstream/,
  });

  await a.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { owner: { name: 'Acme Engines' } } });
  await a.node.syncWorker!.tick();
  const after = (await top.call('GET', '/api/sync/reports?after=0&limit=10', { token: ADMIN })).json.reports;
  t.match(after.at(-1), { body: { prefix: '88.100.7', event: 'changed', owner: { name: 'Acme Engines' } }, outcome: 'accepted' });

  // The same report twice (a retry after a lost answer) is applied once.
  const report = { kind: 'prefix', event: 'created', prefix: '88.100.8', owner: { name: 'X' }, status: 'pending', idempotencyKey: 'k-1' };
  const one = await top.call('POST', '/api/sync/reports', { token, body: report });
  const two = await top.call('POST', '/api/sync/reports', { token, body: report });
  t.same([one.status, one.json.duplicate, two.status, two.json.duplicate, two.json.id], [201, false, 200, true, one.json.id]);
  t.equal((await top.call('GET', '/api/sync/reports?limit=1000', { token: ADMIN })).json.reports.filter((r: any) => r.idempotencyKey === 'k-1').length, 1);

  a.node.stats.registration();
  await a.node.syncWorker!.reportStats();
  await a.node.syncWorker!.tick();
  const stats = (await top.call('GET', '/api/sync/reports?limit=1000', { token: ADMIN })).json.reports.filter((r: any) => r.kind === 'stats');
  t.equal(stats.length, 1);
  t.match(stats[0].body, {
    kind: 'stats',
    registrations: Number,
    resolutions: Number,
    latencyMs: { p50: Number, p95: Number, p99: Number },
    from: /Z$/,
    to: /Z$/,
  });

  const bad: Array<[unknown, RegExp]> = [
    [{ kind: 'prefix', prefix: '88.100.9' }, /idempotencyKey/],
    [{ kind: 'gossip', idempotencyKey: 'x' }, /kind must be/],
    [{ kind: 'prefix', prefix: '88..1', idempotencyKey: 'x' }, /prefix: /],
    [{ kind: 'stats', idempotencyKey: 'x', registrations: -1 }, /registrations/],
    [{ kind: 'stats', idempotencyKey: 'x', registrations: 1, resolutions: 1, from: 'no', to: 'no' }, /from must be/],
    [{ kind: 'stats', idempotencyKey: 'x', registrations: 1, resolutions: 1, from: '2026-01-01T00:00:00Z', to: '2026-01-01T00:01:00Z' }, /latencyMs/],
    [[1], /JSON object/],
  ];
  for (const [body, message] of bad) t.match((await top.call('POST', '/api/sync/reports', { token, body })).json, { code: 'IDN_INVALID_VALUE', message });
  t.match((await top.call('POST', '/api/sync/reports', { token: ADMIN, body: report })).json, { code: 'IDN_FORBIDDEN', message: /role node/ });
  t.match((await top.call('POST', '/api/sync/reports', { token })).json, { code: 'IDN_BODY_UNPARSABLE' });
  t.equal((await top.call('GET', '/api/sync/reports', { token })).status, 403, 'only admins read reports');
  t.match((await top.call('GET', '/api/sync/reports?limit=100000', { token: ADMIN })).json, { code: 'IDN_BAD_REQUEST' });
  t.match((await a.call('GET', '/api/sync/outbox?limit=1', { token: ADMIN })).json, { next: Number });
});

t.test('reports are retried with backoff until the upstream is back', async (t) => {
  let up = true;
  let received = 0;
  const arrived = deferred();
  const top = await fakeNode(t, (req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (!up) {
        res.writeHead(503, { 'content-type': 'application/json' });
        return res.end('{"responseCode":3,"message":"busy","code":"IDN_UNAVAILABLE"}');
      }
      received++;
      arrived.resolve();
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ responseCode: 1, outcome: 'accepted', got: JSON.parse(body) }));
    });
  });
  up = false;
  const clock = testClock();
  const a = await startNode(
    t,
    { upstream: { url: top.url, token: 'x', failuresToDown: 100 }, sync: { statsIntervalSeconds: 0, retryMaxMs: 200 } },
    { now: clock.now },
  );
  await a.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.7', owner: { name: 'Acme' } } });
  await a.node.syncWorker!.tick();
  let ob = (await a.call('GET', '/api/sync/outbox', { token: ADMIN })).json;
  t.match(ob.reports[0], { state: 'pending', attempts: 1, lastError: /HTTP 503/ });
  up = true;
  clock.advance(1000); // past the longest backoff (retryMaxMs 200, jitter up to 1.5×)
  await arrived.promise; // the worker's own timer sent it
  await a.node.syncWorker!.tick(); // joins that round, or finds nothing left to send
  ob = (await a.call('GET', '/api/sync/outbox', { token: ADMIN })).json;
  t.equal(ob.pending, 0, 'sent by the timer once the upstream answers');
  t.equal(received, 1);
  t.equal((await a.call('GET', '/api/prefixes/88.100.7', { token: ADMIN })).json.status, 'active');
});
