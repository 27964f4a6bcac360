import t from 'tap';
import { join } from 'node:path';
import { parseIdentifier } from '../src/identifier/index.js';
import { createPrefixes } from '../src/registry/prefixes.js';
import { createResolver } from '../src/resolver/index.js';
import { openStore, type Store } from '../src/store/index.js';
import { createUpstreamClient } from '../src/upstream/client.js';
import { createRouter } from '../src/upstream/routing.js';
import { ADMIN, rawRequest, registrar, sampleValues, startNode, tempDir, TEST_ENGINE } from './helpers.js';
import { tamper } from './tamper.js';

t.test('GET/HEAD answer Handle.Net JSON with ETag, Cache-Control, Cache-Status; 304 on If-None-Match', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  const put = await c.call('PUT', '/api/handles/88.100.7/ABC-1', { token: reg, body: { values: sampleValues } });
  t.equal(put.status, 200);
  t.same(put.json, { responseCode: 1, handle: '88.100.7/ABC-1' });

  const miss = await c.call('GET', '/api/handles/88.100.7/ABC-1');
  t.equal(miss.status, 200);
  t.equal(miss.json.responseCode, 1);
  t.equal(miss.json.handle, '88.100.7/ABC-1');
  t.same(
    miss.json.values.map((v: any) => [v.index, v.type, v.data, v.ttl]),
    [
      [1, 'URL', { format: 'string', value: 'https://example.com/p/1' }, 86400],
      [2, 'name', { format: 'string', value: 'Brake caliper JH-C320' }, 86400],
      [3, 'batch', { format: 'string', value: 'B-0001' }, 3600],
    ],
  );
  t.match(miss.json.values[0].timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  t.notOk('permissions' in miss.json.values[0], 'default permissions are not rendered');
  t.equal(miss.headers.get('cache-control'), 'max-age=3600', 'smallest ttl');
  t.equal(miss.headers.get('cache-status'), 'idnode; fwd=uri-miss; detail=not-admitted', 'a first miss is answered, not stored (admission)');
  t.match(miss.headers.get('content-type'), /application\/json/);
  const etag = miss.headers.get('etag')!;
  t.match(etag, /^"[\w-]+"$/);
  const second = await c.call('GET', '/api/handles/88.100.7/ABC-1');
  t.equal(second.headers.get('cache-status'), 'idnode; fwd=uri-miss; stored', 'the second miss is stored');
  t.equal(second.text, miss.text);
  t.equal(second.headers.get('etag'), etag);

  const hit = await c.call('GET', '/api/handles/88.100.7/abc-1');
  t.equal(hit.headers.get('cache-status'), 'idnode; hit', 'case variant hits the same cache entry');
  t.equal(hit.text, miss.text.replace('"handle":"88.100.7/ABC-1"', '"handle":"88.100.7/abc-1"'), 'same bytes but the spelling asked');
  t.equal(hit.headers.get('content-length'), miss.headers.get('content-length'));
  t.equal(hit.headers.get('etag'), etag);
  t.equal(hit.headers.get('cache-control'), 'max-age=3600');

  const head = await c.call('HEAD', '/api/handles/88.100.7/ABC-1');
  t.equal(head.status, 200);
  t.equal(head.text, '');
  t.equal(head.headers.get('content-length'), String(Buffer.byteLength(miss.text)));
  t.equal(head.headers.get('etag'), etag);

  const nm = await c.call('GET', '/api/handles/88.100.7/ABC-1', { headers: { 'if-none-match': `"nope", ${etag}` } });
  t.equal(nm.status, 304);
  t.equal(nm.text, '');
  t.equal(nm.headers.get('etag'), etag);
  t.equal((await c.call('GET', '/api/handles/88.100.7/ABC-1', { headers: { 'if-none-match': '"other"' } })).status, 200);
  const nmSlow = await c.call('GET', '/api/handles/88.100.7/ABC-1?auth=true', { headers: { 'if-none-match': `W/${etag}` } });
  t.equal(nmSlow.status, 304, 'weak comparison on the fastify path too');

  const bypass = await c.call('GET', '/api/handles/88.100.7/ABC-1?auth=true');
  t.equal(bypass.headers.get('cache-status'), 'idnode; fwd=bypass');
  t.equal(bypass.text, miss.text);
});

t.test(
  'rows written before schema v5 (no stored ETag or max-age) answer exactly like rows written after it',
  { skip: TEST_ENGINE === 'postgres' && 'a SQLite file from before schema v5; PostgreSQL starts at its own v1 with those columns' },
  async (t) => {
    const c = await startNode(t, { cache: { maxBytes: 0 } });
    const reg = await registrar(c);
    const values = [
      ...sampleValues,
      { index: 4, type: 'recall', data: 'none', ttl: new Date(Date.now() + 600_000).toISOString() },
      { index: 5, type: 'cost', data: '9', ttl: 5, permissions: '1100' },
    ];
    await c.call('PUT', '/api/handles/88.100.7/META-1', { token: reg, body: { values } });
    const stored = (await c.node.store.getRecord('88.100.7/meta-1'))!;
    t.equal(stored.maxAge, 3600, 'smallest relative ttl of the public values');
    t.ok(stored.expiresAt! > Date.now(), 'earliest absolute expiry');
    const v5 = await c.call('GET', '/api/handles/88.100.7/META-1');
    t.equal(v5.headers.get('etag'), stored.etag);
    t.match(v5.headers.get('cache-control'), /^max-age=(59\d|600)$/, 'the absolute expiry is nearer than the 3600 s ttl');
    t.notOk(
      v5.json.values.some((v: any) => v.index === 5),
      'public view',
    );
    // As a file written before schema v5 holds them: edited behind the node's back.
    const file = tamper(c.config.db);
    file.clearAnswerMetadata();
    file.close();
    const v4 = await c.call('GET', '/api/handles/88.100.7/META-1');
    t.equal(v4.text, v5.text);
    t.equal(v4.headers.get('etag'), v5.headers.get('etag'), 'computed from the body when not stored');
    t.equal(v4.headers.get('cache-control'), v5.headers.get('cache-control'));
  },
);

t.test('non-ASCII answers: Content-Length counts UTF-8 bytes on a miss, a hit and a filtered answer', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  await c.call('PUT', '/api/handles/88.100.7/发动机-1', {
    token: reg,
    body: {
      values: [
        { index: 1, type: 'name', data: '发动机总成 ENGINE' },
        { index: 2, type: 'URL', data: 'http://x/é' },
      ],
    },
  });
  for (const [label, path] of [
    ['miss', '/api/handles/88.100.7/发动机-1'],
    ['hit', '/api/handles/88.100.7/发动机-1'],
    ['filtered', '/api/handles/88.100.7/发动机-1?type=name'],
  ] as const) {
    const a = await c.call('GET', encodeURI(path));
    t.equal(a.status, 200, label);
    t.equal(Number(a.headers.get('content-length')), Buffer.byteLength(a.text), `${label}: bytes, not characters`);
    t.equal(a.json.handle, '88.100.7/发动机-1');
    t.equal(a.json.values[0].data.value, '发动机总成 ENGINE');
  }
});

t.test('type and index filters, subtypes, pretty', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  await c.call('PUT', '/api/handles/88.100.7/F', {
    token: reg,
    body: [...sampleValues, { index: 4, type: 'URL.backup', data: 'https://b' }, { index: 5, type: 'URLX', data: 'no' }],
  });
  const byType = await c.call('GET', '/api/handles/88.100.7/F?type=url');
  t.same(
    byType.json.values.map((v: any) => v.index),
    [1],
    'type is case-insensitive and exact without a dot',
  );
  const sub = await c.call('GET', '/api/handles/88.100.7/F?type=URL.');
  t.same(
    sub.json.values.map((v: any) => v.index),
    [1, 4],
    'trailing dot matches the type and its subtypes',
  );
  const or = await c.call('GET', '/api/handles/88.100.7/F?type=batch&index=2&index=5');
  t.same(
    or.json.values.map((v: any) => v.index),
    [2, 3, 5],
    'type and index are OR-ed, order kept',
  );
  t.equal(or.headers.get('cache-control'), 'max-age=3600');
  t.not(or.headers.get('etag'), (await c.call('GET', '/api/handles/88.100.7/F')).headers.get('etag'), 'filtered answers have their own ETag');
  const none = await c.call('GET', '/api/handles/88.100.7/F?type=nothing');
  t.equal(none.status, 200);
  t.same(none.json, { responseCode: 200, handle: '88.100.7/F', values: [] });
  const pretty = await c.call('GET', '/api/handles/88.100.7/F?pretty');
  t.match(pretty.text, /^\{\n {2}"responseCode": 1,/);
  t.equal(pretty.json.values.length, 5);
  const bad = await c.call('GET', '/api/handles/88.100.7/F?index=x');
  t.equal(bad.status, 400);
  t.match(bad.json, { responseCode: 4, code: 'IDN_BAD_REQUEST', handle: '88.100.7/F', message: /index/ });
});

t.test('non-public values only for authorised readers; never from the public cache', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  const other = await registrar(c, '88.100.8');
  await c.call('PUT', '/api/handles/88.100.7/P', {
    token: reg,
    body: [
      { index: 1, type: 'name', data: 'pub' },
      { index: 2, type: 'cost', data: '12.50 CNY', permissions: '1100' },
    ],
  });
  const anon = await c.call('GET', '/api/handles/88.100.7/P');
  t.same(
    anon.json.values.map((v: any) => v.index),
    [1],
  );
  t.equal((await c.call('GET', '/api/handles/88.100.7/P')).headers.get('cache-status'), 'idnode; fwd=uri-miss; stored', 'stored on its second miss');
  const anonHit = await c.call('GET', '/api/handles/88.100.7/P');
  t.equal(anonHit.headers.get('cache-status'), 'idnode; hit');
  const auditor = (await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'auditor' } })).json.secret;
  for (const [who, token] of [
    ['admin', ADMIN],
    ['registrar', reg],
    ['auditor', auditor],
  ] as const) {
    const full = await c.call('GET', '/api/handles/88.100.7/P', { token });
    t.same(
      full.json.values.map((v: any) => [v.index, v.permissions]),
      [
        [1, undefined],
        [2, '1100'],
      ],
      `${who} sees the non-public value`,
    );
    t.not(full.headers.get('cache-status'), 'idnode; hit', `${who} is not served the public cache entry`);
  }
  const outsider = await c.call('GET', '/api/handles/88.100.7/P', { token: other });
  t.same(
    outsider.json.values.map((v: any) => v.index),
    [1],
    'a registrar of another prefix sees only public values',
  );
  const basic = Buffer.from(`300%3A88.100%2FADMIN:${ADMIN}`).toString('base64');
  const viaBasic = await c.call('GET', '/api/handles/88.100.7/P', { headers: { authorization: `Basic ${basic}` } });
  t.equal(viaBasic.json.values.length, 2, 'HTTP Basic as Handle clients send it');
  const again = await c.call('GET', '/api/handles/88.100.7/P');
  t.same(
    again.json.values.map((v: any) => v.index),
    [1],
    'public cache still public after private reads',
  );
  const bad = await c.call('GET', '/api/handles/88.100.7/P', { token: 'wrong' });
  t.equal(bad.status, 401);
  t.match(bad.json, { responseCode: 403, code: 'IDN_AUTH_FAILED' });
  const batch = await c.call('POST', '/api/resolve', { token: reg, body: { handles: ['88.100.7/P'] } });
  t.equal(batch.json.results[0].values.length, 2, 'batch honours the reader too');
});

t.test('not found, not responsible, bad identifiers: clear 4xx with handle and IDN code', async (t) => {
  const c = await startNode(t);
  const nf = await c.call('GET', '/api/handles/88.100.7/missing');
  t.equal(nf.status, 404);
  t.same(nf.json, { responseCode: 100, handle: '88.100.7/missing', message: '88.100.7/missing is not registered', code: 'IDN_NOT_FOUND' });
  t.equal(nf.headers.get('cache-status'), 'idnode; fwd=uri-miss; detail=not-admitted', 'a first not-found is not stored (admission)');
  const nfStored = await c.call('GET', '/api/handles/88.100.7/missing');
  t.equal(nfStored.headers.get('cache-status'), 'idnode; fwd=uri-miss; stored', 'a second one is');
  const nf2 = await c.call('GET', '/api/handles/88.100.7/missing');
  t.equal(nf2.status, 404, 'negative answers are cached and still 404');
  t.equal(nf2.headers.get('cache-status'), 'idnode; hit');
  const nr = await c.call('GET', '/api/handles/99.1/x');
  t.equal(nr.status, 400);
  t.match(nr.json, { responseCode: 301, code: 'IDN_NOT_RESPONSIBLE', handle: '99.1/x', message: /does not home prefix 99.1/ });
  const cases: Array<[string, RegExp]> = [
    ['/api/handles/88..1/x', /empty segment/],
    ['/api/handles/88.100.7/%ZZ', /percent-escape/],
    ['/api/handles/88.100.7/%E4%B8', /percent-escape/],
    ['/api/handles/88.100.7/%00', /control/],
    ['/api/handles/', /empty/],
    [`/api/handles/88.100.7/${'x'.repeat(2100)}`, /at most 2048/],
  ];
  for (const [path, msg] of cases) {
    const r = await c.call('GET', path);
    t.equal(r.status, 400, path.slice(0, 40));
    t.match(r.json, { responseCode: 102, code: 'IDN_INVALID_IDENTIFIER', message: msg }, path.slice(0, 40));
  }
  const raw = await rawRequest(c.url, Buffer.concat([Buffer.from('GET /api/handles/88.100.7/'), Buffer.from([0xff, 0xfe])]));
  t.equal(raw.status, 400, 'raw bytes that are not UTF-8');
  t.match(JSON.parse(raw.body), { responseCode: 102, code: 'IDN_INVALID_IDENTIFIER', message: /percent-encode/ });
  const garbage = await rawRequest(c.url, 'GARBAGE');
  t.equal(garbage.status, 400, 'an unparsable request line');
  t.match(JSON.parse(garbage.body), { responseCode: 4, code: 'IDN_BAD_REQUEST' });
  const route = await c.call('GET', '/api/nothing');
  t.equal(route.status, 404);
  t.match(route.json, { code: 'IDN_ROUTE_NOT_FOUND', message: /\/docs/ });
});

t.test('identifier spelling: percent-escapes, %2F, +, non-ASCII, trailing slash', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  const ids = ['88.100.7/a/b', '88.100.7/a+b', '88.100.7/发动机-1', '88.100.7/x', '88.100.7/x/'];
  for (const id of ids) {
    const r = await c.call('PUT', `/api/handles/${encodeURIComponent(id).replace(/%2F/, '/')}`, { token: reg, body: [{ index: 1, type: 'id', data: id }] });
    t.equal(r.status, 200, `PUT ${id}`);
  }
  for (const id of ids) {
    for (const path of [encodeURIComponent(id).replace(/%2F/, '/'), encodeURIComponent(id)]) {
      const r = await c.call('GET', `/api/handles/${path}`);
      t.equal(r.json?.values?.[0]?.data?.value, id, `GET ${path}`);
    }
  }
  // node:http refuses raw non-ASCII bytes in the request line; clients must percent-encode.
  const raw = await rawRequest(c.url, Buffer.from('GET /api/handles/88.100.7/发动机-1'));
  t.equal(raw.status, 400);
  t.match(JSON.parse(raw.body), { responseCode: 102, message: /percent-encode the identifier as UTF-8/ });
  t.equal((await c.call('GET', '/api/handles/88.100.7/a%20b')).status, 404, 'space is a valid suffix character, just not registered');
});

t.test('prefix handles: 0.NA/<prefix> and the slashless form', async (t) => {
  const c = await startNode(t, { baseUrl: 'http://node-a.example:8000' });
  await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.7', owner: { name: 'Acme' } } });
  await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.9', owner: { name: 'Remote' }, site: 'http://127.0.0.1:9' } });
  const site = (r: any) => r.json.values.find((v: any) => v.type === 'HS_SITE').data.value.attributes.find((a: any) => a.name === 'baseUrl').value;
  const hosted = await c.call('GET', '/api/handles/0.NA/88.100.7');
  t.equal(hosted.status, 200);
  t.equal(hosted.json.handle, '0.NA/88.100.7');
  t.equal(site(hosted), 'http://node-a.example:8000');
  t.equal(hosted.json.values[0].data.format, 'site');
  const slashless = await c.call('GET', '/api/handles/88.100.7');
  t.equal(slashless.json.handle, '0.NA/88.100.7');
  t.equal(site(await c.call('GET', '/api/handles/0.na/88.100.9')), 'http://127.0.0.1:9', 'delegated prefix names its site');
  t.equal(site(await c.call('GET', '/api/handles/88.100')), 'http://node-a.example:8000', 'homed prefix');
  t.equal((await c.call('GET', '/api/handles/0.NA/88.100.5')).status, 404);
  t.equal((await c.call('GET', '/api/handles/0.NA/99')).status, 400, 'unknown prefix outside the homed ones');
});

t.test('batch resolve: one answer per identifier, in order; bounded', async (t) => {
  const c = await startNode(t, { limits: { batchMax: 3 } });
  const reg = await registrar(c);
  await c.call('PUT', '/api/handles/88.100.7/A', { token: reg, body: sampleValues });
  const r = await c.call('POST', '/api/resolve?type=batch', { body: { handles: ['88.100.7/a', 'bad', '88.100.7/none'] } });
  t.equal(r.status, 200);
  t.equal(r.json.responseCode, 1);
  t.same(
    r.json.results.map((x: any) => [x.responseCode, x.handle]),
    [
      [1, '88.100.7/a'],
      [301, '0.NA/bad'],
      [100, '88.100.7/none'],
    ],
  );
  t.same(
    r.json.results[0].values.map((v: any) => v.type),
    ['batch'],
    'filters apply to each',
  );
  t.equal(r.json.results[2].code, 'IDN_NOT_FOUND');
  const big = await c.call('POST', '/api/resolve', { body: { handles: ['a/1', 'a/2', 'a/3', 'a/4'] } });
  t.equal(big.status, 400);
  t.match(big.json, { responseCode: 4, code: 'IDN_BAD_REQUEST', message: /at most 3 .*limits.batchMax/ });
  t.match((await c.call('POST', '/api/resolve', { body: { handle: [] } })).json, { responseCode: 202, code: 'IDN_INVALID_VALUE' });
  t.match((await c.call('POST', '/api/resolve', { body: '{"handles":' })).json, { responseCode: 4, code: 'IDN_BODY_UNPARSABLE' });
  t.match((await c.call('POST', '/api/resolve', { body: { handles: [{}] } })).json, { responseCode: 202, code: 'IDN_INVALID_VALUE' });
});

t.test('cache is bounded by bytes and can be turned off', async (t) => {
  const c = await startNode(t, { cache: { maxBytes: 4000 } });
  const reg = await registrar(c);
  for (let i = 0; i < 20; i++) await c.call('PUT', `/api/handles/88.100.7/N${i}`, { token: reg, body: sampleValues });
  // Twice each: admission stores an answer on its second miss.
  for (let i = 0; i < 20; i++) for (let j = 0; j < 2; j++) await c.call('GET', `/api/handles/88.100.7/N${i}`);
  const stats = c.node.resolver.stats();
  t.ok(stats.bytes <= 4000, `cache holds ${stats.bytes} bytes <= 4000`);
  t.ok(stats.entries > 0 && stats.entries < 20, `bounded to ${stats.entries} entries`);
  const lru = await startNode(t, { cache: { maxBytes: 4000, admission: false } });
  const reg3 = await registrar(lru);
  for (let i = 0; i < 20; i++) await lru.call('PUT', `/api/handles/88.100.7/N${i}`, { token: reg3, body: sampleValues });
  for (let i = 0; i < 20; i++) await lru.call('GET', `/api/handles/88.100.7/N${i}`);
  const plain = lru.node.resolver.stats();
  t.ok(plain.bytes <= 4000, `without admission: ${plain.bytes} bytes <= 4000`);
  t.ok(plain.entries > 0 && plain.entries < 20 && plain.evictions > 0, `without admission: evicted down to ${plain.entries} entries`);
  const off = await startNode(t, { cache: { maxBytes: 0 } });
  const reg2 = await registrar(off);
  await off.call('PUT', '/api/handles/88.100.7/A', { token: reg2, body: sampleValues });
  await off.call('GET', '/api/handles/88.100.7/A');
  const second = await off.call('GET', '/api/handles/88.100.7/A');
  t.equal(second.headers.get('cache-status'), 'idnode; fwd=uri-miss', 'maxBytes 0: nothing stored');
  t.equal(off.node.resolver.stats().entries, 0);
});

t.test('an engine without a synchronous read: misses are answered on the async path only', async (t) => {
  const full = openStore(join(tempDir(t), 'a.db'));
  t.teardown(() => full.close());
  await full.write({ actor: 'test', action: 'seed', target: 'x' }, async (tx) => {
    await tx.putRecord({
      handleKey: '88.100.7/a',
      handle: '88.100.7/A',
      prefixKey: '88.100.7',
      valuesJson: '[]',
      publicJson: null,
      maxAge: 60,
      expiresAt: null,
      etag: '"e"',
    });
    return { result: undefined, payload: null };
  });
  const upstream = createUpstreamClient({ timeoutMs: 1000, deadlineMs: 1000, maxInFlight: 1, maxResponseBytes: 1024, failuresToDown: 1, downCooldownMs: 1000 });
  t.teardown(() => upstream.close());
  const resolverOn = async (store: Store) => {
    const router = await createRouter({ store, homed: ['88.100'], upstreamUrl: '' });
    const prefixes = createPrefixes({ store, router, homed: ['88.100'], baseUrl: 'http://127.0.0.1:1', hasUpstream: false, startedAt: '2026-01-01T00:00:00Z' });
    return createResolver({ store, router, prefixes, upstream, cacheMaxBytes: 1 << 20, notFoundTtlSeconds: 5, staleWindowSeconds: 0 });
  };
  const id = parseIdentifier('88.100.7/A');
  const opts = { bypassCache: false, privateAccess: false, hops: 0 };

  const asyncOnly = await resolverOn({ ...full, answerRowSync: undefined });
  t.equal(asyncOnly.resolveLocal(id), undefined, 'no synchronous answer: the fast path hands the miss on');
  const answered = await asyncOnly.resolve(id, opts);
  t.match(answered, { source: 'store', entry: { status: 200, etag: '"e"', maxAge: 60 } });
  t.match(answered.entry.body, /"handle":"88\.100\.7\/A"/);

  const sync = await resolverOn(full);
  const local = sync.resolveLocal(id);
  t.match(local, { source: 'store', entry: { status: 200, etag: '"e"' } }, 'with the capability the miss is answered synchronously');
  t.equal(local!.entry.body, answered.entry.body, 'the same answer either way');
});

t.test('an async read overtaken by an invalidation is answered but not cached', async (t) => {
  const full = openStore(join(tempDir(t), 'a.db'));
  t.teardown(() => full.close());
  await full.write({ actor: 'test', action: 'seed', target: 'x' }, async (tx) => {
    await tx.putRecord({
      handleKey: '88.100.7/a',
      handle: '88.100.7/A',
      prefixKey: '88.100.7',
      valuesJson: '[]',
      publicJson: null,
      maxAge: 60,
      expiresAt: null,
      etag: '"e"',
    });
    return { result: undefined, payload: null };
  });
  const upstream = createUpstreamClient({ timeoutMs: 1000, deadlineMs: 1000, maxInFlight: 1, maxResponseBytes: 1024, failuresToDown: 1, downCooldownMs: 1000 });
  t.teardown(() => upstream.close());
  let read!: () => void;
  const reading = new Promise<void>((r) => (read = r));
  let release: (() => void) | undefined;
  const slow: Store = {
    ...full,
    answerRowSync: undefined,
    async answerRow(key) {
      const row = await full.answerRow(key);
      if (release === undefined) {
        const gate = new Promise<void>((r) => (release = r));
        read();
        await gate;
      }
      return row;
    },
  };
  const router = await createRouter({ store: slow, homed: ['88.100'], upstreamUrl: '' });
  const prefixes = createPrefixes({
    store: slow,
    router,
    homed: ['88.100'],
    baseUrl: 'http://127.0.0.1:1',
    hasUpstream: false,
    startedAt: '2026-01-01T00:00:00Z',
  });
  const resolver = createResolver({ store: slow, router, prefixes, upstream, cacheMaxBytes: 1 << 20, notFoundTtlSeconds: 5, staleWindowSeconds: 0 });
  const id = parseIdentifier('88.100.7/A');
  const opts = { bypassCache: false, privateAccess: false, hops: 0 };
  const first = resolver.resolve(id, opts);
  await reading;
  resolver.invalidate(id.key);
  release!();
  t.match(await first, { source: 'store', cacheStatus: 'idnode; fwd=uri-miss', entry: { status: 200 } }, 'answered, marked uncached');
  t.equal(resolver.stats().entries, 0, 'nothing cached');
  t.match(await resolver.resolve(id, opts), { source: 'store', cacheStatus: 'idnode; fwd=uri-miss; stored' }, 'the next miss reads and caches');
  t.match(await resolver.resolve(id, opts), { source: 'cache' });
});
