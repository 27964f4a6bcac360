/**
 * Hostile clients against a real node: raw sockets that trickle headers or bodies, hold
 * connections open or flood it. Every wait is for an event (a byte, a close, a shedder change),
 * never for time; no assertion reads a clock.
 */
import t, { type Test } from 'tap';
import { createServer, request as httpRequest, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { ADMIN, registrar, sampleValues, startNode } from './helpers.js';

interface Raw {
  socket: Socket;
  /** Everything the node sent so far. */
  received(): string;
  /** Resolves once the node's answer contains `text`. */
  seen(text: string): Promise<void>;
  /** Resolves with everything received once the node closed the connection. */
  closed: Promise<string>;
}

/** A raw connection to the node; `first` is written at once. */
async function open(url: string, first = ''): Promise<Raw> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  let text = '';
  const waiters: (() => void)[] = [];
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => {
    text += d;
    for (const w of waiters.splice(0)) w();
  });
  socket.on('error', () => {});
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(text)));
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  if (first !== '') socket.write(first);
  return {
    socket,
    received: () => text,
    async seen(want) {
      while (!text.includes(want)) {
        if (socket.destroyed) throw new Error(`closed before "${want}" arrived: ${text}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          socket.once('close', r);
        });
      }
    },
    closed,
  };
}

/** Status, lower-cased head and body of the one answer on a `Connection: close` exchange. */
function parse(text: string): { status: number; head: string; body: string; json: any } {
  const at = text.indexOf('\r\n\r\n');
  const body = text.slice(at + 4);
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: Number(text.slice(9, 12)), head: text.slice(0, at).toLowerCase(), body, json };
}

/** One request on a new connection, read until the node closes it. */
async function exchange(url: string, line: string, headers = ''): Promise<ReturnType<typeof parse>> {
  const raw = await open(url, `${line} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n${headers}\r\n`);
  return parse(await raw.closed);
}

/** Writes one byte every 50 ms until the socket closes: a client that is never quite silent. */
function trickle(raw: Raw, byte: string): void {
  const timer = setInterval(() => {
    if (!raw.socket.destroyed) raw.socket.write(byte);
  }, 50);
  raw.socket.once('close', () => clearInterval(timer));
}

function putHead(path: string, token: string, length: number): string {
  return (
    `PUT ${path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${length}\r\nExpect: 100-continue\r\n\r\n`
  );
}

t.test('trickling bodies hold no shedding slot: writes and uncached reads are still served', async (t) => {
  const c = await startNode(t, { shedding: { maxInFlight: 50, eventLoopDelayMs: 0 } });
  const shedder = c.node.app.shedder;
  const R = await registrar(c);
  const tricklers: Raw[] = [];
  for (let i = 0; i < 200; i++) tricklers.push(await open(c.url, putHead(`/api/handles/88.100.7/SLOW-${i}`, R, 4000)));
  // node:http writes 100 Continue as it hands the request over, and the shedding hook runs in the same turn.
  await Promise.all(tricklers.map((s) => s.seen('100 Continue')));
  for (const s of tricklers) trickle(s, ' ');
  for (const s of tricklers) s.socket.write('{"values":');
  t.equal(shedder.inFlight(), 0, '200 bodies under way take no slot');
  t.notOk(shedder.overloaded(), 'the node is not overloaded by them');

  const write = await c.call('PUT', '/api/handles/88.100.7/FAST-1', { token: R, body: { values: sampleValues } });
  t.equal(write.status, 200, 'a normal write is served while 200 bodies trickle');
  const read = await c.call('GET', '/api/handles/88.100.7/FAST-1', { token: R });
  t.equal(read.status, 200, 'an uncached read (with a token, past the fast path) is served');
  t.equal(read.json.handle, '88.100.7/FAST-1');
  t.equal((await c.call('GET', '/api/handles/88.100/NEVER-WRITTEN')).status, 404, 'an anonymous miss is answered, not shed');
  t.equal(tricklers.filter((s) => s.received().includes('HTTP/1.1 503')).length, 0, 'no trickler was refused: none of them held a slot the others wanted');

  // One trickler finishes its body: only now is it work, and it is served.
  const last = tricklers.pop()!;
  last.socket.destroy();
  const done = await open(c.url, putHead('/api/handles/88.100.7/SLOW-DONE', R, Buffer.byteLength(JSON.stringify({ values: sampleValues }))));
  await done.seen('100 Continue');
  done.socket.end(JSON.stringify({ values: sampleValues }));
  t.match(await done.closed, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /, 'a body that completes is served');
  for (const s of tricklers) s.socket.destroy();
  await Promise.all(tricklers.map((s) => s.closed));
  await new Promise<void>((resolve) => {
    if (shedder.inFlight() === 0) return resolve();
    const off = shedder.watch(() => shedder.inFlight() === 0 && (off(), resolve()));
  });
  t.equal(shedder.inFlight(), 0, 'every slot was given back');
});

t.test('a body that does not arrive within limits.requestTimeoutMs is cut with 408', async (t) => {
  const c = await startNode(t, { limits: { requestTimeoutMs: 1000 } });
  const R = await registrar(c);
  const slow = await open(c.url, putHead('/api/handles/88.100.7/SLOW', R, 4000) + '{"values":[');
  trickle(slow, ' ');
  // Bodies that arrive whole are unaffected by the bound.
  t.equal((await c.call('PUT', '/api/handles/88.100.7/WHOLE', { token: R, body: { values: sampleValues } })).status, 200, 'a body sent whole is served');
  const answer = parse((await slow.closed).replace('HTTP/1.1 100 Continue\r\n\r\n', ''));
  t.equal(answer.status, 408, 'the trickler gets 408');
  t.match(answer.head, /connection: close/);
  t.match(answer.json, { responseCode: 4, code: 'IDN_BAD_REQUEST', message: /limits\.requestTimeoutMs/ }, 'in the Handle shape, naming the key');
  t.equal((await c.call('GET', '/api/handles/88.100.7/SLOW', { token: R })).status, 404, 'nothing was written');
  t.equal(c.node.app.shedder.inFlight(), 0);

  // A body still arriving after an early answer (401: the token is checked before the body) is bounded too.
  const refused = await open(c.url, putHead('/api/handles/88.100.7/SLOW-2', 'not-a-token', 4000).replace('Expect: 100-continue\r\n', '') + '{');
  trickle(refused, ' ');
  const text = await refused.closed;
  t.notMatch(text, /408/, 'no second answer once one was sent');
  t.equal(parse(text).status, 401, 'the early answer (an unknown token) was sent, then the connection closed');
});

t.test('headers that trickle are cut with 408 naming limits.headersTimeoutMs', async (t) => {
  const c = await startNode(t, { limits: { headersTimeoutMs: 500 } });
  const slow = await open(c.url, 'GET /healthz HTTP/1.1\r\nHost: t\r\n');
  trickle(slow, 'X');
  const silent = await open(c.url);
  t.equal((await c.call('GET', '/healthz')).status, 200, 'others are served meanwhile');
  const answer = parse(await slow.closed);
  t.equal(answer.status, 408);
  t.match(answer.json, { responseCode: 4, code: 'IDN_BAD_REQUEST', message: /limits\.headersTimeoutMs/ });
  const nothing = await silent.closed;
  t.ok(nothing === '' || parse(nothing).status === 408, 'a connection that never sends a byte is closed too');
});

t.test('an idle keep-alive connection is closed after limits.keepAliveTimeoutMs', async (t) => {
  const c = await startNode(t, { limits: { keepAliveTimeoutMs: 300 } });
  const kept = await open(c.url, 'GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n');
  await kept.seen('"status"');
  const text = await kept.closed;
  t.equal(text.match(/HTTP\/1\.1 /g)?.length, 1, 'one answer, then the idle connection was closed');
  t.equal(parse(text).status, 200);
});

/** A streamed bulk upload over node:http: lines go in one by one, answer lines come back as they commit. */
function bulkUpload(url: string, token: string) {
  const answers: string[] = [];
  const waiters: (() => void)[] = [];
  let ended = false;
  const req = httpRequest(`${url}/api/prefixes/88.100.7/handles`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' },
  });
  const finished = new Promise<{ complete: boolean; lines: string[] }>((resolve) => {
    req.on('error', () => resolve({ complete: false, lines: answers }));
    req.on('response', (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        const parts = buf.split('\n');
        buf = parts.pop()!;
        answers.push(...parts);
        for (const w of waiters.splice(0)) w();
      });
      res.on('error', () => {});
      res.on('close', () => {
        ended = true;
        for (const w of waiters.splice(0)) w();
        resolve({ complete: res.complete, lines: answers });
      });
    });
  });
  return {
    req,
    finished,
    line: (handle: string) => req.write(`${JSON.stringify({ handle, values: sampleValues })}\n`),
    /** Resolves once `n` answer lines arrived: true, or false when the answer ended first. */
    async answered(n: number): Promise<boolean> {
      while (answers.length < n && !ended) await new Promise<void>((r) => waiters.push(r));
      return answers.length >= n;
    },
  };
}

t.test('bulk uploads: bounded by idle time, not by limits.requestTimeoutMs', async (t) => {
  const c = await startNode(t, { limits: { requestTimeoutMs: 500, bodyIdleTimeoutMs: 2000 }, bulk: { chunkSize: 1 } });
  const R = await registrar(c);

  // A moving upload outlives the request bound: it is still sending after a trickler started later was cut by it.
  const moving = bulkUpload(c.url, R);
  moving.line('88.100.7/BULK-0');
  t.ok(await moving.answered(1), 'the first line is answered');
  const probe = await open(c.url, putHead('/api/handles/88.100.7/PROBE', R, 100) + '{');
  let probeCut = false;
  void probe.closed.then(() => (probeCut = true));
  let sent = 1;
  let alive = true;
  while (!probeCut && alive) {
    moving.line(`88.100.7/BULK-${sent++}`);
    alive = await moving.answered(sent);
  }
  t.ok(alive, 'the upload was never cut');
  t.equal(parse((await probe.closed).replace('HTTP/1.1 100 Continue\r\n\r\n', '')).status, 408, 'a plain body was cut meanwhile');
  moving.req.end();
  const result = await moving.finished;
  t.ok(result.complete, 'the moving upload was answered in full');
  t.match(JSON.parse(result.lines.at(-1)!), { summary: true, total: sent, ok: sent, failed: 0 });
});

t.test('a bulk upload that goes silent is cut after limits.bodyIdleTimeoutMs', async (t) => {
  const c = await startNode(t, { limits: { bodyIdleTimeoutMs: 300 }, bulk: { chunkSize: 1 } });
  const R = await registrar(c);
  const stalled = bulkUpload(c.url, R);
  stalled.line('88.100.7/STALL-0');
  t.ok(await stalled.answered(1), 'the first line is answered');
  const result = await stalled.finished;
  t.notOk(result.complete, 'the answer was cut, not completed');
  t.notOk(
    result.lines.some((l) => l.includes('"summary"')),
    'no summary: the upload did not end',
  );
  t.equal((await c.call('GET', '/api/handles/88.100.7/STALL-0')).status, 200, 'the committed chunk stays');
  t.equal(c.node.app.shedder.inFlight(), 0, 'its slot was given back');
});

/** An upstream that holds every resolution until release() (another node under load). */
async function heldUpstream(t: Test) {
  const held: ServerResponse[] = [];
  const waiters: (() => void)[] = [];
  const server = createServer((req, res) => {
    if (!req.url!.startsWith('/api/handles/')) return res.writeHead(503, { 'retry-after': '60' }).end();
    held.push(res);
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => server.close(r)));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async waitHeld(n: number) {
      while (held.length < n) await new Promise<void>((r) => waiters.push(r));
    },
    release() {
      for (const res of held.splice(0)) res.writeHead(404, { 'content-type': 'application/json' }).end('{"responseCode":100}');
    },
  };
}

t.test('a flood of held requests at the in-flight bound: new connections are still answered', async (t) => {
  const up = await heldUpstream(t);
  const c = await startNode(t, { upstream: { url: up.url }, shedding: { maxInFlight: 50, eventLoopDelayMs: 0 } });
  const shedder = c.node.app.shedder;
  const flood: Raw[] = [];
  for (let i = 0; i < 80; i++) flood.push(await open(c.url, `GET /api/handles/77.1/FLOOD-${i} HTTP/1.1\r\nHost: t\r\n\r\n`));
  await up.waitHeld(50);
  // The 30 over the bound are refused at once, on connections that stay open.
  const refused = flood.slice(50);
  await Promise.all(refused.map((s) => s.seen('retry-after')));
  t.equal(shedder.inFlight(), 50);

  const health = await exchange(c.url, 'GET /healthz');
  t.equal(health.status, 200, "a new connection's /healthz is answered");
  const miss = await exchange(c.url, 'GET /api/handles/88.100/NEW-MISS');
  t.equal(miss.status, 503, 'a new anonymous miss is refused');
  t.match(miss.head, /retry-after: 1/);
  t.match(miss.json, { responseCode: 3, code: 'IDN_UNAVAILABLE', message: /config shedding\.maxInFlight/ });
  t.equal((await exchange(c.url, 'GET /api/tokens', `Authorization: Bearer ${ADMIN}\r\n`)).status, 200, 'an admin call is answered');

  up.release();
  await Promise.all(flood.slice(0, 50).map((s) => s.seen('"responseCode"')));
  for (const s of flood) s.socket.destroy();
  await new Promise<void>((resolve) => {
    if (shedder.inFlight() === 0) return resolve();
    const off = shedder.watch(() => shedder.inFlight() === 0 && (off(), resolve()));
  });
  t.equal((await exchange(c.url, 'GET /api/handles/88.100/AFTER')).status, 404, 'served again once the load is gone');
});

t.test('over limits.maxConnections: 503 with Retry-After and closed; health and admin still answered', async (t) => {
  const c = await startNode(t, { limits: { maxConnections: 5 } });
  const serverSide: Socket[] = [];
  const accepted: (() => void)[] = [];
  c.node.app.server.on('connection', (s: Socket) => {
    serverSide.push(s);
    for (const w of accepted.splice(0)) w();
  });
  const idle: Raw[] = [];
  for (let i = 0; i < 5; i++) idle.push(await open(c.url));
  while (serverSide.length < 5) await new Promise<void>((r) => accepted.push(r));

  const over = await exchange(c.url, 'GET /api/handles/88.100/OVER');
  t.equal(over.status, 503, 'a request on a sixth connection is refused');
  t.match(over.head, /retry-after: 1/);
  t.match(over.json, { responseCode: 3, code: 'IDN_UNAVAILABLE', message: /limits\.maxConnections/ });
  // Keep-alive asked for, closed anyway: the client must come back on a new connection.
  const kept = await open(c.url, 'GET /api/handles/88.100/OVER HTTP/1.1\r\nHost: t\r\n\r\n');
  t.match(parse(await kept.closed).head, /connection: close/, 'the over-bound connection is closed after the answer');
  t.equal((await exchange(c.url, 'GET /healthz')).status, 200, '/healthz is answered over the bound');
  t.equal((await exchange(c.url, 'GET /api/tokens', `Authorization: Bearer ${ADMIN}\r\n`)).status, 200, 'an admin call is answered over the bound');

  const gone = Promise.all(serverSide.slice(0, 5).map((s) => new Promise((r) => (s.destroyed ? r(undefined) : s.once('close', r)))));
  for (const s of idle) s.socket.destroy();
  await gone;
  t.equal((await exchange(c.url, 'GET /api/handles/88.100/UNDER')).status, 404, 'served normally once connections closed');
});

t.test('a flood read in one turn of the loop: requests past the delay bound are refused at once, new clients answered', async (t) => {
  // The in-flight bound is off: each request is answered before the next is read, so only the loop's lateness can tell.
  const c = await startNode(t, { shedding: { maxInFlight: 0, eventLoopDelayMs: 100 } });
  const shedder = c.node.app.shedder;
  const n = 300;
  const conns: Raw[] = [];
  for (let i = 0; i < n; i++) conns.push(await open(c.url));
  // Each admitted flood request costs the loop 5 ms (a miss or a write on a loaded node): 300 of them, 1.5 s in one turn.
  c.node.app.server.on('request', (req: { url?: string }) => {
    if (!req.url?.startsWith('/api/handles/88.100/FLOOD-') || shedder.reason() !== undefined) return;
    const end = performance.now() + 5;
    while (performance.now() < end);
  });
  // Written at once: the node finds them all ready and reads them in one turn (or few).
  conns.forEach((s, i) => s.socket.write(`GET /api/handles/88.100/FLOOD-${i} HTTP/1.1\r\nHost: t\r\n\r\n`));
  const [health, miss, admin] = await Promise.all([
    exchange(c.url, 'GET /healthz'),
    exchange(c.url, 'GET /api/handles/88.100/FRESH'),
    exchange(c.url, 'GET /api/tokens', `Authorization: Bearer ${ADMIN}\r\n`),
  ]);
  await Promise.all(conns.map((s) => s.seen('"responseCode"')));
  const answers = conns.map((s) => parse(s.received()));
  const shed = answers.filter((a) => a.status === 503);
  const served = answers.filter((a) => a.status === 404);
  t.equal(shed.length + served.length, n, 'every flooded connection is answered: 404 (served) or 503 (refused)');
  t.ok(shed.length > 0, `requests read while the loop was behind are refused (${shed.length} of ${n})`);
  t.ok(served.length > 0, `the first of the turn are served (${served.length})`);
  for (const a of shed) {
    t.match(a.head, /retry-after: 1/);
    t.match(a.json, { responseCode: 3, code: 'IDN_UNAVAILABLE', message: /event loop \d+ ms behind; config shedding\.eventLoopDelayMs/ });
  }
  t.equal(health.status, 200, "a new connection's /healthz is answered");
  t.ok(miss.status === 404 || (miss.status === 503 && /retry-after: 1/.test(miss.head)), `a new client's resolution is answered (${miss.status})`);
  t.equal(admin.status, 200, 'an admin call is answered');
  for (const s of conns) s.socket.destroy();
});
