import t, { type Test } from 'tap';
import { createServer, type ServerResponse } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { join } from 'node:path';
import { runDemo } from '../src/cli/demo.js';
import type { Shedder } from '../src/server/shedding.js';
import { ADMIN, type Answer, freeDemoBase, registrar, sampleValues, startNode, tempDir } from './helpers.js';

/** An upstream node that holds every answer until `release()`, then answers at once. */
async function heldUpstream(t: Test) {
  const held: ServerResponse[] = [];
  const seen: string[] = [];
  const waiters: (() => void)[] = [];
  let open = false;
  const answer = (res: ServerResponse, url: string) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        responseCode: 1,
        handle: decodeURIComponent(url.slice(13)),
        // A whole Handle value: forwarded answers are checked (ttl and timestamp included).
        values: [{ index: 1, type: 'URL', data: { format: 'string', value: 'x' }, ttl: 0, timestamp: '2026-01-01T00:00:00Z' }],
      }),
    );
  };
  const urls = new WeakMap<ServerResponse, string>();
  const server = createServer((req, res) => {
    // Only resolutions are held; the sync worker's reports are told to come back later.
    if (!req.url!.startsWith('/api/handles/')) return res.writeHead(503, { 'retry-after': '60' }).end();
    seen.push(decodeURIComponent(req.url!.slice(13)));
    if (open) return answer(res, req.url!);
    urls.set(res, req.url!);
    held.push(res);
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => server.close(r)));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    held: () => held.length,
    /** The identifiers asked for, in order of arrival. */
    seen,
    /** Resolves once the upstream holds `n` requests (an event, not a wait for time). */
    async waitHeld(n: number) {
      while (held.length < n) await new Promise<void>((r) => waiters.push(r));
    },
    release() {
      open = true;
      for (const res of held.splice(0)) answer(res, urls.get(res)!);
    },
  };
}

/** Resolves when `cond` holds, re-checked on each change the shedder reports. */
function until(shedder: Shedder, cond: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (cond()) return resolve();
    const off = shedder.watch(() => {
      if (!cond()) return;
      off();
      resolve();
    });
  });
}

/** Keeps this process's event loop blocked in 200 ms slices (a node overloaded for real) until the returned stop(). */
function stallLoop(): () => void {
  let on = true;
  const slice = () => {
    if (!on) return;
    const end = Date.now() + 200;
    while (Date.now() < end);
    setImmediate(slice);
  };
  setImmediate(slice);
  return () => {
    on = false;
  };
}

const basic = (secret: string) => `Basic ${Buffer.from(`300%3A88.100%2FADMIN:${secret}`).toString('base64')}`;

function assertShed(t: Test, r: Answer, what: string, message: RegExp) {
  t.equal(r.status, 503, `${what}: 503`);
  t.match(r.json, { responseCode: 3, code: 'IDN_UNAVAILABLE', message }, `${what}: IDN_UNAVAILABLE`);
  t.equal(r.headers.get('retry-after'), '1', `${what}: Retry-After`);
}

t.test('past the in-flight bound: 503/3 at once, accepted requests keep their latency, memory stays flat', async (t) => {
  const up = await heldUpstream(t);
  const c = await startNode(t, { upstream: { url: up.url }, shedding: { maxInFlight: 3, eventLoopDelayMs: 0 } });
  const shedder = c.node.app.shedder;
  const heap0 = process.memoryUsage().heapUsed;
  const answered: Answer[] = [];
  let refused!: () => void;
  const thirtySevenAnswered = new Promise<void>((r) => (refused = r));
  const all = Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      c.call('GET', `/api/handles/77.1/S-${i}`).then((r) => {
        answered.push(r);
        if (answered.length === 37) refused();
        return r;
      }),
    ),
  );
  await up.waitHeld(3);
  await thirtySevenAnswered;
  // Refused at once, not queued: 37 answers came back while the three admitted are still held upstream.
  t.equal(up.held(), 3, 'the admitted three are still waiting on the upstream');
  t.equal(shedder.inFlight(), 3);
  t.ok(
    answered.every((r) => r.status === 503),
    'the 37 answers before the upstream answered are all refusals',
  );
  t.match(answered[0]!.json, { responseCode: 3, code: 'IDN_UNAVAILABLE', message: /3 requests are in flight \(config shedding.maxInFlight\)/ });
  t.equal(answered[0]!.headers.get('retry-after'), '1');
  t.equal((await c.call('GET', '/healthz')).status, 200, 'health checks are never shed');
  up.release();
  const results = await all;
  const ok = results.filter((r) => r.status === 200);
  t.equal(ok.length, 3, 'the bound admits three');
  t.equal(results.filter((r) => r.status === 503).length, 37);
  // Accepted ones keep their latency: they waited on the upstream alone, which answered exactly them.
  t.same(ok.map((r) => r.json.handle as string).sort(), [...up.seen].sort(), 'the admitted three are the three the upstream held');
  for (let round = 0; round < 20; round++) await Promise.all(Array.from({ length: 50 }, (_, i) => c.call('GET', `/api/handles/77.1/R-${round}-${i}`)));
  t.ok(process.memoryUsage().heapUsed - heap0 < 64 * 1024 * 1024, 'memory stays bounded under a thousand refused requests');
  await until(shedder, () => shedder.inFlight() === 0);
  t.equal(shedder.inFlight(), 0, 'every admitted request was counted out');
  t.equal((await c.call('GET', '/api/handles/77.1/after')).status, 200);
});

t.test('overloaded: health, metrics and admin calls (Bearer and Basic) are answered, everything else is shed', async (t) => {
  const up = await heldUpstream(t);
  const c = await startNode(t, { upstream: { url: up.url }, shedding: { maxInFlight: 2, eventLoopDelayMs: 0 } });
  const shedder = c.node.app.shedder;
  const R = await registrar(c);
  // With an upstream a new prefix waits for its acceptance; an admin makes it active here.
  t.equal((await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { status: 'active' } })).status, 200);
  const spare = await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'admin', label: 'second admin, revoked under load' } });
  t.equal(spare.status, 201);
  t.equal((await c.call('PUT', '/api/handles/88.100.7/CACHED-1', { token: R, body: { values: sampleValues } })).status, 200);
  t.equal((await c.call('GET', '/api/handles/88.100.7/CACHED-1')).status, 200, 'read once: now cached');

  // Two anonymous forwarded reads fill the bound and stay there until the upstream answers.
  const blockers = [c.call('GET', '/api/handles/77.1/B-0'), c.call('GET', '/api/handles/77.1/B-1')];
  await up.waitHeld(2);
  t.equal(shedder.inFlight(), 2);
  t.ok(shedder.overloaded(), 'the node is overloaded');
  const full = /2 requests are in flight \(config shedding.maxInFlight\)/;

  for (const path of ['/healthz', '/readyz', '/metrics', '/metrics?x=1']) t.equal((await c.call('GET', path)).status, 200, `${path} is answered`);
  assertShed(t, await c.call('GET', '/api/handles/88.100/UNCACHED-1'), 'anonymous uncached read', full);
  assertShed(t, await c.call('GET', '/api/handles/88.100.7/CACHED-1?type=URL'), 'anonymous read past the fast path', full);
  t.equal((await c.call('GET', '/api/handles/88.100.7/CACHED-1')).headers.get('cache-status'), 'idnode; hit', 'a cache hit is still served');
  assertShed(t, await c.call('PUT', '/api/handles/88.100.7/W-1', { token: R, body: { values: sampleValues } }), 'registrar write', full);
  assertShed(t, await c.call('GET', '/api/handles/88.100.7/CACHED-1', { token: R }), 'registrar read', full);
  assertShed(t, await c.call('GET', '/api/tokens', { token: 'not-a-token' }), 'unknown token', full);
  assertShed(t, await c.call('GET', '/api/tokens', { headers: { authorization: 'Digest x' } }), 'unsupported scheme', full);
  assertShed(t, await c.call('GET', '/api/tokens', { headers: { authorization: 'Basic bm9jb2xvbg==' } }), 'Basic without a colon', full);
  assertShed(t, await c.call('GET', '/api/tokens', { headers: { authorization: 'Bearer' } }), 'empty Bearer token', full);
  assertShed(t, await c.call('GET', '/api/tokens', { headers: { authorization: '' } }), 'empty Authorization header', full);

  // Admin, Bearer: reads and writes.
  const list = await c.call('GET', '/api/tokens', { token: ADMIN });
  t.equal(list.status, 200, 'admin read (Bearer) is answered');
  t.ok(list.json.tokens.length >= 3);
  t.equal((await c.call('PUT', '/api/handles/88.100.7/ADMIN-1', { token: ADMIN, body: { values: sampleValues } })).status, 200, 'admin write (Bearer)');
  t.equal((await c.call('GET', '/api/handles/88.100.7/ADMIN-1', { token: ADMIN })).json.handle, '88.100.7/ADMIN-1');
  // Admin, Handle-style Basic credentials.
  t.equal((await c.call('GET', '/api/tokens', { headers: { authorization: basic(ADMIN) } })).status, 200, 'admin read (Basic)');
  const prefix = await c.call('POST', '/api/prefixes', {
    headers: { authorization: basic(ADMIN) },
    body: { prefix: '88.100.8', owner: { name: 'Under load' } },
  });
  t.equal(prefix.status, 201, 'admin write (Basic)');

  // A second admin token passes until it is revoked, then it is shed like anonymous traffic, at once.
  const secret = spare.json.secret as string;
  t.equal((await c.call('GET', '/api/tokens', { token: secret })).status, 200, 'the second admin token passes');
  t.equal((await c.call('DELETE', `/api/tokens/${spare.json.id as string}`, { token: ADMIN })).status, 200, 'revoked under load by an admin call');
  assertShed(t, await c.call('GET', '/api/tokens', { token: secret }), 'revoked admin token (Bearer)', full);
  assertShed(t, await c.call('GET', '/api/tokens', { headers: { authorization: basic(secret) } }), 'revoked admin token (Basic)', full);

  // The admitted admin calls were counted in and out; the two blockers still hold the bound.
  await until(shedder, () => shedder.inFlight() === 2);
  t.equal(up.held(), 2);
  up.release();
  t.same(
    (await Promise.all(blockers)).map((r) => r.status),
    [200, 200],
  );
  await until(shedder, () => shedder.inFlight() === 0);
  t.notOk(shedder.overloaded());
  t.equal((await c.call('GET', '/api/handles/88.100/UNCACHED-1')).status, 404, 'not shed once the load is gone');
  t.equal((await c.call('GET', '/api/tokens', { token: secret })).status, 401, 'the revoked token is refused, as before (401 since round 2)');
});

/** A PUT whose headers go now (answered 100 Continue once the node took them) and whose body goes at `finish()`. */
async function slowPut(url: string, path: string, token: string, body: string) {
  const { hostname, port } = new URL(url);
  const sock = connect(Number(port), hostname);
  let text = '';
  sock.setEncoding('utf8');
  const continued = new Promise<void>((resolve) =>
    sock.on('data', (d: string) => {
      text += d;
      if (text.includes('100 Continue')) resolve();
    }),
  );
  const closed = new Promise<string>((resolve) => sock.on('close', () => resolve(text)));
  sock.write(
    `PUT ${path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
  );
  await continued;
  return { finish: () => sock.write(body), closed };
}

t.test('the slot is taken once the body is in: admitted headers can still be refused, exempt ones are served', async (t) => {
  const up = await heldUpstream(t);
  const c = await startNode(t, { upstream: { url: up.url }, shedding: { maxInFlight: 2, eventLoopDelayMs: 0 } });
  const shedder = c.node.app.shedder;
  const R = await registrar(c);
  t.equal((await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { status: 'active' } })).status, 200);
  const body = JSON.stringify({ values: sampleValues });
  // Headers in while the node has room: they pass the shed check but hold no slot.
  const late = await slowPut(c.url, '/api/handles/88.100.7/LATE-1', R, body);
  t.equal(shedder.inFlight(), 0, 'headers alone take no slot');
  const blockers = [c.call('GET', '/api/handles/77.1/B-0'), c.call('GET', '/api/handles/77.1/B-1')];
  await up.waitHeld(2);
  t.ok(shedder.overloaded());
  // An admin's headers, seen while overloaded, are exempt; its body is still to come.
  const admin = await slowPut(c.url, '/api/handles/88.100.7/ADMIN-LATE', ADMIN, body);
  late.finish();
  admin.finish();
  const refused = await late.closed;
  t.match(refused, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 503 /, 'a body that arrives at a full node is refused then');
  t.match(refused.toLowerCase(), /\r\nretry-after: 1\r\n/);
  t.match(refused, /2 requests are in flight \(config shedding\.maxInFlight\)/);
  t.match(await admin.closed, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /, 'the admin write, exempt when its headers came, is served');
  t.equal(up.held(), 2, 'the blockers still hold the bound');
  up.release();
  t.same(
    (await Promise.all(blockers)).map((r) => r.status),
    [200, 200],
  );
  await until(shedder, () => shedder.inFlight() === 0);
  t.equal((await c.call('GET', '/api/handles/88.100.7/LATE-1', { token: R })).status, 404, 'the refused write wrote nothing');
  t.equal((await c.call('GET', '/api/handles/88.100.7/ADMIN-LATE', { token: R })).status, 200);
});

t.test('event-loop delay turns shedding on and off', async (t) => {
  const c = await startNode(t, { shedding: { maxInFlight: 0, eventLoopDelayMs: 100 } });
  const shedder = c.node.app.shedder;
  // Feed a measurement just after the monitor's own, so it holds for a whole window.
  let measured = 0;
  shedder.watch(() => measured++);
  const nextWindow = async () => {
    const seen = measured;
    await until(shedder, () => measured > seen);
  };
  await nextWindow();
  shedder.observeDelay(400);
  const shed = await c.call('GET', '/api/handles/88.100/none');
  assertShed(t, shed, 'a measured delay over the threshold', /event loop 400 ms behind; config shedding.eventLoopDelayMs/);
  shedder.observeDelay(1);
  t.equal((await c.call('GET', '/api/handles/88.100/none')).status, 404);

  // One stall is one late sample: a 700 ms block does not shed (the old max-per-200-ms measure did).
  let everOverloaded = false;
  const off = shedder.watch(() => (everOverloaded ||= shedder.overloaded()));
  await nextWindow();
  const end = Date.now() + 700;
  while (Date.now() < end);
  await nextWindow();
  await nextWindow();
  off();
  t.notOk(everOverloaded, 'a single 700 ms stall does not turn shedding on');
  t.equal((await c.call('GET', '/api/handles/88.100/after-stall')).status, 404);

  // A loop that is late on every turn is overloaded: the monitor notices, and admin calls still pass.
  const stop = stallLoop();
  try {
    await until(shedder, () => shedder.overloaded());
    t.ok(shedder.overloaded(), 'shed while the loop stays behind');
    const [anon, admin, health, write] = await Promise.all([
      c.call('GET', '/api/handles/88.100/stall-1'),
      c.call('GET', '/api/tokens', { token: ADMIN }),
      c.call('GET', '/healthz'),
      c.call('POST', '/api/prefixes', { headers: { authorization: basic(ADMIN) }, body: { prefix: '88.100.5', owner: { name: 'Under a stalled loop' } } }),
    ]);
    assertShed(t, anon, 'anonymous read while the loop is behind', /event loop \d+ ms behind; config shedding.eventLoopDelayMs/);
    t.equal(admin.status, 200, 'admin read (Bearer) answered while the loop is behind');
    t.equal(health.status, 200, '/healthz answered while the loop is behind');
    t.equal(write.status, 201, 'admin write (Basic) answered while the loop is behind');
  } finally {
    stop();
  }
  await until(shedder, () => !shedder.overloaded());
  t.equal((await c.call('GET', '/api/handles/88.100/after-0')).status, 404, 'and back once the loop keeps up');
});

t.test('idnode demo sets up its hierarchy while every node sheds', async (t) => {
  // With a 1 ms threshold an idle loop (about 10 ms at the monitor's resolution) reads as overloaded.
  const c = await startNode(t, { shedding: { maxInFlight: 0, eventLoopDelayMs: 1 } });
  await until(c.node.app.shedder, () => c.node.app.shedder.overloaded());
  assertShed(t, await c.call('GET', '/api/handles/88.100/none'), 'anonymous read at a 1 ms threshold', /event loop \d+ ms behind/);
  t.equal((await c.call('GET', '/api/tokens', { token: ADMIN })).status, 200, 'admin call at a 1 ms threshold');

  // The demo's nodes read their config from the environment too; its setup calls are admin calls.
  const saved = process.env.IDNODE_SHEDDING_EVENT_LOOP_DELAY_MS;
  process.env.IDNODE_SHEDDING_EVENT_LOOP_DELAY_MS = '1';
  t.teardown(() => {
    if (saved === undefined) delete process.env.IDNODE_SHEDDING_EVENT_LOOP_DELAY_MS;
    else process.env.IDNODE_SHEDDING_EVENT_LOOP_DELAY_MS = saved;
  });
  const lines: string[] = [];
  const base = await freeDemoBase();
  const code = await runDemo({ basePort: base, dir: join(tempDir(t), 'demo'), out: (l) => lines.push(l), stopAfterSetup: true });
  t.equal(code, 0, 'every setup call was answered');
  t.match(lines.join('\n'), /E {2}enterprise node 88\.100\.9/);
});
