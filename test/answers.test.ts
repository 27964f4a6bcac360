/**
 * One answer writer: the same request answered by the fast path (a plain GET/HEAD, before
 * fastify) and by the fastify route (the same request made to decline the fast path with a
 * query, `?auth=false`, that changes nothing, or with a token) gets the same status,
 * headers and body.
 */
import t, { type Test } from 'tap';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { foldCase } from '../src/identifier/index.js';
import { ADMIN, type Answer, type Client, registrar, sampleValues, startNode } from './helpers.js';

const COMPARED = ['content-type', 'content-length', 'etag', 'cache-control', 'cache-status'] as const;

function view(a: Answer, extra: string[] = []) {
  const headers: Record<string, string | null> = {};
  for (const h of [...COMPARED, ...extra]) headers[h] = a.headers.get(h);
  return { status: a.status, headers, body: a.text };
}

interface Ask {
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  /** Cache key to drop before each request, so each one is a miss. */
  invalidate?: string;
}

/**
 * Sends `path` three ways: plain (fast path), with `?auth=false` and with a token (both
 * fastify); checks the three agree and returns the fast path's answer.
 */
async function threeWays(
  t: Test,
  c: Client & { node: { resolver: { invalidate(k: string): void } } },
  token: string,
  label: string,
  path: string,
  ask: Ask = {},
) {
  const method = ask.method ?? 'GET';
  const drop = () => ask.invalidate !== undefined && c.node.resolver.invalidate(ask.invalidate);
  drop();
  const fast = await c.call(method, path, { headers: ask.headers ?? {} });
  drop();
  const query = await c.call(method, `${path}?auth=false`, { headers: ask.headers ?? {} });
  drop();
  const withToken = await c.call(method, path, { headers: ask.headers ?? {}, token });
  t.same(view(query), view(fast), `${label}: a query (fastify) answers as the fast path does`);
  t.same(view(withToken), view(fast), `${label}: a token (fastify) answers as the fast path does`);
  return fast;
}

t.test('hit, miss, 304, HEAD, not-found, invalid identifier and Chinese text: fast path and fastify answer alike', async (t) => {
  // Every miss here is stored, so the three ways of asking meet the same cache state (admission: test/admission.test.ts).
  const c = await startNode(t, { cache: { admission: false } });
  const reg = await registrar(c);
  // An unscoped auditor reads everything: the record below is all public, so it gets the public answer.
  const auditor = (await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'auditor' } })).json.secret as string;
  t.equal((await c.call('PUT', '/api/handles/88.100.7/ANS-1', { token: reg, body: { values: sampleValues } })).status, 200);

  const miss = await threeWays(t, c, auditor, 'miss', '/api/handles/88.100.7/ANS-1', { invalidate: '88.100.7/ans-1' });
  t.equal(miss.status, 200);
  t.equal(miss.headers.get('cache-status'), 'idnode; fwd=uri-miss; stored');
  t.equal(miss.headers.get('content-type'), 'application/json; charset=utf-8');
  t.equal(miss.headers.get('content-length'), String(Buffer.byteLength(miss.text)));
  t.equal(miss.headers.get('cache-control'), 'max-age=3600');
  t.match(miss.headers.get('etag'), /^"[\w-]+"$/);
  t.equal(JSON.parse(miss.text).handle, '88.100.7/ANS-1');

  const hit = await threeWays(t, c, auditor, 'hit', '/api/handles/88.100.7/ANS-1');
  t.equal(hit.headers.get('cache-status'), 'idnode; hit');
  t.equal(hit.text, miss.text, 'a hit sends the bytes of the miss');
  t.equal(hit.headers.get('etag'), miss.headers.get('etag'));

  const etag = hit.headers.get('etag')!;
  const nm = await threeWays(t, c, auditor, '304', '/api/handles/88.100.7/ANS-1', { headers: { 'if-none-match': `"other", W/${etag}` } });
  t.equal(nm.status, 304);
  t.equal(nm.text, '');
  t.equal(nm.headers.get('etag'), etag);
  t.equal(nm.headers.get('cache-control'), 'max-age=3600');
  t.equal(nm.headers.get('cache-status'), 'idnode; hit');
  t.equal(nm.headers.get('content-type'), null, 'a 304 has no Content-Type');

  const head = await threeWays(t, c, auditor, 'HEAD', '/api/handles/88.100.7/ANS-1', { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.text, '');
  t.equal(head.headers.get('content-length'), String(Buffer.byteLength(hit.text)), 'HEAD: the length of the GET body');
  t.equal(head.headers.get('etag'), etag);

  const head304 = await threeWays(t, c, auditor, 'HEAD 304', '/api/handles/88.100.7/ANS-1', { method: 'HEAD', headers: { 'if-none-match': etag } });
  t.equal(head304.status, 304);
  t.equal(head304.headers.get('content-length'), null, 'a 304 to HEAD claims no length either');
  t.equal(head304.headers.get('etag'), etag);

  const nfMiss = await threeWays(t, c, auditor, 'not-found miss', '/api/handles/88.100.7/NOPE', { invalidate: '88.100.7/nope' });
  t.equal(nfMiss.status, 404);
  t.same(JSON.parse(nfMiss.text), { responseCode: 100, handle: '88.100.7/NOPE', message: '88.100.7/NOPE is not registered', code: 'IDN_NOT_FOUND' });
  t.equal(nfMiss.headers.get('cache-status'), 'idnode; fwd=uri-miss; stored');
  t.equal(nfMiss.headers.get('etag'), null, 'errors have no ETag');
  t.equal(nfMiss.headers.get('cache-control'), null);
  const nfHit = await threeWays(t, c, auditor, 'not-found hit', '/api/handles/88.100.7/NOPE');
  t.equal(nfHit.headers.get('cache-status'), 'idnode; hit');
  t.equal(nfHit.text, nfMiss.text);
  const nfHead = await threeWays(t, c, auditor, 'not-found HEAD', '/api/handles/88.100.7/NOPE', { method: 'HEAD' });
  t.equal(nfHead.status, 404);
  t.equal(nfHead.headers.get('content-length'), String(Buffer.byteLength(nfMiss.text)));

  const bad = await threeWays(t, c, auditor, 'invalid identifier', '/api/handles/88..100/X');
  t.equal(bad.status, 400);
  t.equal(JSON.parse(bad.text).code, 'IDN_INVALID_IDENTIFIER');
  t.equal(bad.headers.get('content-type'), 'application/json; charset=utf-8');
  t.equal(bad.headers.get('content-length'), String(Buffer.byteLength(bad.text)));

  const suffix = '发动机-2026-000042';
  const chinese = [
    { index: 1, type: 'URL', data: 'https://acme.example/p/发动机' },
    { index: 2, type: 'name', data: { format: 'string', value: '制动钳 JH-C320（前）' } },
  ];
  t.equal((await c.call('PUT', `/api/handles/88.100.7/${encodeURIComponent(suffix)}`, { token: reg, body: { values: chinese } })).status, 200);
  const path = `/api/handles/88.100.7/${encodeURIComponent(suffix)}`;
  const zhMiss = await threeWays(t, c, auditor, 'Chinese miss', path, { invalidate: foldCase(`88.100.7/${suffix}`) });
  t.equal(zhMiss.status, 200);
  t.equal(zhMiss.headers.get('content-length'), String(Buffer.byteLength(zhMiss.text)), 'bytes, not characters');
  t.ok(Buffer.byteLength(zhMiss.text) > zhMiss.text.length);
  t.equal(JSON.parse(zhMiss.text).handle, `88.100.7/${suffix}`);
  t.equal(JSON.parse(zhMiss.text).values[1].data.value, '制动钳 JH-C320（前）');
  const zhHit = await threeWays(t, c, auditor, 'Chinese hit', path);
  t.equal(zhHit.headers.get('cache-status'), 'idnode; hit');
  t.equal(zhHit.text, zhMiss.text);
  const zhHead = await threeWays(t, c, auditor, 'Chinese HEAD', path, { method: 'HEAD' });
  t.equal(zhHead.headers.get('content-length'), zhMiss.headers.get('content-length'));
});

t.test('a filter that keeps every value answers exactly the plain GET; a narrower filter gets its own ETag and max-age', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  t.equal((await c.call('PUT', '/api/handles/88.100.7/FIL-1', { token: reg, body: { values: sampleValues } })).status, 200);
  for (let i = 0; i < 2; i++) await c.call('GET', '/api/handles/88.100.7/FIL-1');
  const plain = await c.call('GET', '/api/handles/88.100.7/FIL-1');
  t.equal(plain.headers.get('cache-status'), 'idnode; hit');
  for (const q of ['type=URL&type=name&type=batch', 'index=1&index=2&index=3', 'type=URL&index=2&index=3']) {
    const all = await c.call('GET', `/api/handles/88.100.7/FIL-1?${q}`);
    t.same(view(all), view(plain), `?${q}: same status, headers and bytes as the plain answer`);
  }

  const narrow = await c.call('GET', '/api/handles/88.100.7/FIL-1?type=URL');
  t.equal(narrow.status, 200);
  t.same(
    JSON.parse(narrow.text).values.map((v: any) => v.index),
    [1],
  );
  t.equal(narrow.headers.get('content-type'), 'application/json; charset=utf-8');
  t.equal(narrow.headers.get('content-length'), String(Buffer.byteLength(narrow.text)));
  t.equal(narrow.headers.get('cache-control'), 'max-age=86400', 'the smallest ttl of what is sent');
  t.equal(narrow.headers.get('cache-status'), 'idnode; hit', 'the cache status of the answer it was cut from');
  t.match(narrow.headers.get('etag'), /^"[\w-]+"$/);
  t.not(narrow.headers.get('etag'), plain.headers.get('etag'));
  const narrowHead = await c.call('HEAD', '/api/handles/88.100.7/FIL-1?type=URL');
  t.same(view(narrowHead), { ...view(narrow), body: '' }, 'HEAD of a filtered answer: its headers, no body');
  const narrow304 = await c.call('GET', '/api/handles/88.100.7/FIL-1?type=URL', { headers: { 'if-none-match': narrow.headers.get('etag')! } });
  t.equal(narrow304.status, 304);
  t.equal(narrow304.headers.get('etag'), narrow.headers.get('etag'));
  t.equal(narrow304.headers.get('cache-control'), 'max-age=86400');

  const none = await c.call('GET', '/api/handles/88.100.7/FIL-1?type=EMAIL');
  t.same(JSON.parse(none.text), { responseCode: 200, handle: '88.100.7/FIL-1', values: [] });
  t.equal(none.headers.get('content-length'), String(Buffer.byteLength(none.text)));
  t.equal(none.headers.get('cache-control'), 'max-age=0');
});

t.test('errors from a failing upstream: the fast path and fastify write the same error answer', async (t) => {
  // A port that refuses: bound, then closed.
  const dead = await new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
  const upstream = { url: `http://127.0.0.1:${dead}`, failuresToDown: 1000 };
  const c = await startNode(t, { upstream });
  const auditor = (await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'auditor' } })).json.secret as string;
  const refused = await threeWays(t, c, auditor, 'upstream refused', '/api/handles/77.1/X');
  t.equal(refused.status, 502);
  t.match(JSON.parse(refused.text), { responseCode: 2, handle: '77.1/X', code: 'IDN_UPSTREAM_UNREACHABLE' });
  t.equal(refused.headers.get('content-length'), String(Buffer.byteLength(refused.text)));
  t.equal(refused.headers.get('cache-status'), null, 'errors carry no cache status');
  const refusedHead = await threeWays(t, c, auditor, 'upstream refused, HEAD', '/api/handles/77.1/X', { method: 'HEAD' });
  t.equal(refusedHead.status, 502);
  t.equal(refusedHead.text, '');

  // One failure marks this node's upstream down: every answer after it is 503 with Retry-After.
  const d = await startNode(t, { upstream: { ...upstream, failuresToDown: 1, downCooldownMs: 600000 } });
  t.equal((await d.call('GET', '/api/handles/77.1/Y')).status, 502);
  const fast = await d.call('GET', '/api/handles/77.1/Y');
  const slow = await d.call('GET', '/api/handles/77.1/Y?auth=false');
  t.equal(fast.status, 503);
  // The message and Retry-After count down the seconds left; a busy machine may cross one between the two.
  const seconds = (a: Answer) => {
    const v = view(a, ['retry-after']);
    return { ...v, body: v.body.replace(/in \d+ s/, 'in N s'), headers: { ...v.headers, 'content-length': null, 'retry-after': null } };
  };
  t.same(seconds(slow), seconds(fast), 'down: same status, headers and body');
  for (const a of [fast, slow]) {
    t.match(a.headers.get('retry-after'), /^\d+$/, 'Retry-After on both paths');
    t.equal(a.headers.get('content-length'), String(Buffer.byteLength(a.text)));
    t.match(JSON.parse(a.text), { responseCode: 3, handle: '77.1/Y', code: 'IDN_UNAVAILABLE' });
  }
});

t.test('a hit goes out as UTF-8 whatever its characters: all ASCII, the Latin-1 range, respelled', async (t) => {
  const c = await startNode(t, { cache: { admission: false } });
  const reg = await registrar(c);
  const latin = [{ index: 1, type: 'name', data: { format: 'string', value: 'Müller café, 5 °C, ½ kg' } }];
  t.equal((await c.call('PUT', '/api/handles/88.100.7/LAT-1', { token: reg, body: { values: latin } })).status, 200);
  t.equal((await c.call('PUT', '/api/handles/88.100.7/ASC-1', { token: reg, body: { values: sampleValues } })).status, 200);
  const bytes = async (path: string) => {
    const res = await fetch(c.url + path);
    return { length: res.headers.get('content-length'), cacheStatus: res.headers.get('cache-status'), body: Buffer.from(await res.arrayBuffer()) };
  };
  for (const path of ['/api/handles/88.100.7/LAT-1', '/api/handles/88.100.7/lat-1', '/api/handles/88.100.7/ASC-1', '/api/handles/88.100.7/asc-1']) {
    await bytes(path); // the miss that caches it
    const hit = await bytes(path);
    t.equal(hit.cacheStatus, 'idnode; hit', `${path}: a hit`);
    // fastify (a query declines the fast path) sends its string as UTF-8: the reference bytes.
    const routed = await bytes(`${path}?auth=false`);
    t.same(hit.body, routed.body, `${path}: the same bytes as fastify sends`);
    t.equal(hit.length, String(hit.body.length), `${path}: Content-Length counts the bytes sent`);
    const answer = JSON.parse(hit.body.toString('utf8'));
    t.equal(answer.handle, path.slice('/api/handles/'.length), `${path}: the spelling asked`);
    if (path.includes('LAT') || path.includes('lat')) t.equal(answer.values[0].data.value, 'Müller café, 5 °C, ½ kg', `${path}: the text survives`);
  }
});

t.test('the fast path sends each answer its own header list, in order, whatever the answer before it had', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  t.equal((await c.call('PUT', '/api/handles/88.100.7/HDR-1', { token: reg, body: { values: sampleValues } })).status, 200);
  const raw = (path: string, method = 'GET') =>
    new Promise<{ status: number; headers: string[]; body: string }>((resolve, reject) => {
      request(c.url + path, { method }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          // node's own Date, Connection and Keep-Alive follow idnode's list.
          const own = res.rawHeaders.findIndex((h, i) => i % 2 === 0 && h === 'Date');
          resolve({ status: res.statusCode!, headers: res.rawHeaders.slice(0, own), body });
        });
      })
        .on('error', reject)
        .end();
    });
  const ok = (length: number, cacheStatus: string, etag: string) => [
    'content-type',
    'application/json; charset=utf-8',
    'content-length',
    String(length),
    'cache-status',
    cacheStatus,
    'x-content-type-options',
    'nosniff',
    'access-control-allow-origin',
    '*',
    'etag',
    etag,
    'cache-control',
    'max-age=3600',
  ];
  const first = await raw('/api/handles/88.100.7/HDR-1');
  t.equal(first.status, 200);
  const etag = first.headers[first.headers.indexOf('etag') + 1]!;
  t.match(etag, /^"[\w-]+"$/);
  t.same(first.headers, ok(Buffer.byteLength(first.body), 'idnode; fwd=uri-miss; detail=not-admitted', etag), 'a 200 miss: the whole list');

  const missing = await raw('/api/handles/88.100.7/HDR-NONE');
  t.equal(missing.status, 404);
  t.same(
    missing.headers,
    [
      'content-type',
      'application/json; charset=utf-8',
      'content-length',
      String(Buffer.byteLength(missing.body)),
      'cache-status',
      'idnode; fwd=uri-miss; detail=not-admitted',
      'x-content-type-options',
      'nosniff',
      'access-control-allow-origin',
      '*',
    ],
    'a 404 right after it: no ETag or Cache-Control left over from the 200',
  );

  const respelled = await raw('/api/handles/88.100.7/hdr-1');
  t.equal(JSON.parse(respelled.body).handle, '88.100.7/hdr-1');
  t.same(
    respelled.headers,
    ok(Buffer.byteLength(respelled.body), 'idnode; fwd=uri-miss; stored', etag),
    'asked again (stored), respelled: its own length, the ETag of the record',
  );
  const hit = await raw('/api/handles/88.100.7/HDR-1', 'HEAD');
  t.same(hit.headers, ok(Buffer.byteLength(first.body), 'idnode; hit', etag), 'a HEAD hit: the GET list');
  t.equal(hit.body, '');
});
