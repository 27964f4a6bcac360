/**
 * Handle compatibility and hardening at the HTTP layer (docs/API.md §5–§6, round 2): what
 * a Handle client (pyhandle) and the reference server expect, and hostile input that must
 * be a 4xx, never a 500. Real nodes on port 0, raw sockets where fetch would normalise.
 */
import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { respell } from '../src/resolver/index.js';
import { ADMIN, type Answer, type Client, rawRequest, registrar, sampleValues, startNode, testClock } from './helpers.js';

const ID = '88.100.7/ENGINE-1';
const withPrivate = [...sampleValues, { index: 4, type: 'cost', data: '12.5 CNY', permissions: '1100' }];

t.test('valueless boolean flags mean true: ?auth, ?pretty, ?publicOnly, ?overwrite, ?mintNewSuffix', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  t.equal((await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: withPrivate })).status, 200);

  const auth = await c.call('GET', `/api/handles/${ID}?auth`);
  t.equal(auth.status, 200);
  t.match(auth.headers.get('cache-status'), /fwd=bypass/, '?auth bypasses the cache');

  const pretty = await c.call('GET', `/api/handles/${ID}?pretty`);
  t.equal(pretty.status, 200);
  t.match(pretty.text, /^\{\n {2}"responseCode": 1,/);

  const all = await c.call('GET', `/api/handles/${ID}`, { token: reg });
  t.same(
    all.json.values.map((v: { index: number }) => v.index),
    [1, 2, 3, 4],
    'an authorized reader sees the private value',
  );
  for (const q of ['publicOnly', 'publicOnly=true']) {
    const pub = await c.call('GET', `/api/handles/${ID}?${q}`, { token: reg });
    t.equal(pub.status, 200, q);
    t.same(
      pub.json.values.map((v: { index: number }) => v.index),
      [1, 2, 3],
      `${q}: only public values for an authorized reader`,
    );
  }
  const batch = await c.call('POST', '/api/resolve?publicOnly', { token: reg, body: { handles: [ID] } });
  t.same(
    batch.json.results[0].values.map((v: { index: number }) => v.index),
    [1, 2, 3],
    'publicOnly on the batch',
  );

  const again = await c.call('PUT', `/api/handles/${ID}?overwrite`, { token: reg, body: sampleValues });
  t.equal(again.status, 200, '?overwrite alone is overwrite=true');
  const minted = await c.call('PUT', '/api/handles/88.100.7/M-?mintNewSuffix', { token: reg, body: sampleValues });
  t.equal(minted.status, 201, '?mintNewSuffix alone mints');
  t.match(minted.json.handle, /^88\.100\.7\/M-[0-9a-f-]{36}$/);
});

t.test('index=0 and negative index filters: 200 with no values', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: sampleValues });
  for (const q of ['index=0', 'index=-1', 'index=-4294967295']) {
    const res = await c.call('GET', `/api/handles/${ID}?${q}`);
    t.equal(res.status, 200, q);
    t.same(res.json, { responseCode: 200, handle: ID, values: [] }, q);
  }
  const mixed = await c.call('GET', `/api/handles/${ID}?index=0&index=2`);
  t.same(
    mixed.json.values.map((v: { index: number }) => v.index),
    [2],
    'a zero index next to a real one selects the real one',
  );
});

t.test('JSONP callback= and pretty on every JSON endpoint; strict callback names', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: sampleValues });

  const js = await c.call('GET', `/api/handles/${ID}?callback=a.b_c$1`);
  t.equal(js.status, 200);
  t.match(js.headers.get('content-type'), /^application\/javascript/);
  const m = /^\/\*\*\/ a\.b_c\$1\((.*)\);$/s.exec(js.text);
  t.ok(m, 'wrapped in the callback');
  t.match(JSON.parse(m![1]!), { responseCode: 1, handle: ID });
  t.equal(js.headers.get('content-length'), String(Buffer.byteLength(js.text)), 'Content-Length counts the wrapped answer');
  t.equal(js.headers.get('etag'), null, 'the JSON ETag is not reused for the script');

  const missing = await c.call('GET', '/api/handles/88.100.7/NOPE?callback=cb');
  t.equal(missing.status, 404);
  t.match(missing.text, /^\/\*\*\/ cb\(\{"responseCode":100,/, 'errors are wrapped too');

  const batch = await c.call('POST', '/api/resolve?callback=cb&pretty', { body: { handles: [ID] } });
  t.match(batch.headers.get('content-type'), /^application\/javascript/);
  t.match(batch.text, /^\/\*\*\/ cb\(\{\n {2}"responseCode": 1,\n {2}"results": \[/, 'batch: pretty and wrapped');

  const prefix = await c.call('GET', '/api/prefixes/88.100.7?pretty', { token: ADMIN });
  t.equal(prefix.status, 200);
  t.match(prefix.text, /^\{\n {2}"prefix": "88\.100\.7",/, 'pretty on a prefix record');

  // Listing, audit and lineage refuse unknown query parameters, yet take these two.
  const list = await c.call('GET', '/api/handles?prefix=88.100.7&pageSize=10&pretty&callback=x', { token: reg });
  t.equal(list.status, 200);
  t.match(list.text, /^\/\*\*\/ x\(\{\n {2}"responseCode": 1,/);
  const audit = await c.call('GET', '/api/audit?limit=1&callback=x', { token: ADMIN });
  t.equal(audit.status, 200);
  t.match(audit.text, /^\/\*\*\/ x\(\{"entries":/);
  t.equal((await c.call('GET', '/healthz?pretty')).text, '{\n  "status": "ok"\n}\n');

  for (const bad of ['alert(1)', '1abc', 'a..b', 'a.', 'x;y', '', 'a'.repeat(129), 'a-b']) {
    const res = await c.call('GET', `/api/handles/${ID}?callback=${encodeURIComponent(bad)}`);
    t.equal(res.status, 400, `callback=${bad.slice(0, 20)}`);
    t.match(res.headers.get('content-type'), /^application\/json/, 'refused as JSON, not as script');
    t.match(res.json, { responseCode: 4, code: 'IDN_BAD_REQUEST', message: /callback= must be one JavaScript name .* at most 128 characters/ });
  }
  t.equal((await c.call('GET', `/api/handles/${ID}?callback=a&callback=b`)).status, 400, 'a repeated callback is refused');
  const badId = await c.call('GET', '/api/handles/88..7/x?callback=alert(1)');
  t.equal(badId.status, 400);
  t.match(badId.json, { code: 'IDN_INVALID_IDENTIFIER' }, 'the identifier is checked first, and its error is not wrapped in a bad name');
  const badBoth = await c.call('GET', `/api/handles/${ID}?callback=alert(1)`);
  t.match(badBoth.json, { handle: ID, code: 'IDN_BAD_REQUEST' }, 'the callback error names the identifier');
  const unauth = await c.call('PUT', `/api/handles/${ID}?callback=alert(1)`, { body: sampleValues });
  t.equal(unauth.status, 401, 'a write authenticates before it reads query parameters');
  t.notMatch(unauth.text, /alert/, 'no answer is wrapped in a refused name');
  t.equal((await c.call('GET', `/api/handles/${ID}?callback=${'a'.repeat(128)}`)).status, 200, '128 characters are allowed');
});

t.test('the fast path never answers callback=, publicOnly or pretty wrongly from a cached answer', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: withPrivate });
  for (let i = 0; i < 2; i++) await c.call('GET', `/api/handles/${ID}`);
  const hit = await c.call('GET', `/api/handles/${ID}`);
  t.equal(hit.headers.get('cache-status'), 'idnode; hit', 'the answer is cached');
  t.match((await c.call('GET', `/api/handles/${ID}?callback=cb`)).text, /^\/\*\*\/ cb\(/);
  t.match((await c.call('GET', `/api/handles/${ID}?pretty`)).text, /^\{\n/);
  const pub = await c.call('GET', `/api/handles/${ID}?publicOnly`, { token: reg });
  t.equal(pub.json.values.length, 3);
});

t.test('listing: prefix=0.NA/<p>; absent or negative page/pageSize mean all, up to limits.listAllMax', async (t) => {
  const c = await startNode(t, { limits: { listAllMax: 3 } });
  const reg = await registrar(c);
  for (const s of ['a', 'b', 'c']) await c.call('PUT', `/api/handles/88.100.7/${s}`, { token: reg, body: sampleValues });
  const every = { responseCode: 1, prefix: '88.100.7', totalCount: 3, handles: ['88.100.7/a', '88.100.7/b', '88.100.7/c'] };
  for (const q of ['', '&page=-1', '&pageSize=-1', '&page=-1&pageSize=-1', '&page=0', '&page=2']) {
    const res = await c.call('GET', `/api/handles?prefix=0.NA/88.100.7${q}`, { token: reg });
    t.equal(res.status, 200, q);
    t.same(res.json, every, `prefix=0.NA/88.100.7${q}`);
  }
  t.same((await c.call('GET', '/api/handles?prefix=0.na%2F88.100.7&page=1&pageSize=2', { token: reg })).json.handles, ['88.100.7/c']);
  await c.call('PUT', '/api/handles/88.100.7/d', { token: reg, body: sampleValues });
  const over = await c.call('GET', '/api/handles?prefix=88.100.7', { token: reg });
  t.equal(over.status, 400);
  t.match(over.json, { responseCode: 4, code: 'IDN_BAD_REQUEST', message: /4 identifiers, more than 3 .*limits\.listAllMax.*page=/ });
  t.equal((await c.call('GET', '/api/handles?prefix=88.100.7&page=1&pageSize=3', { token: reg })).json.handles.length, 1, 'paging still works');
  t.match((await c.call('GET', '/api/handles?prefix=0.NA/88..7', { token: reg })).json, { responseCode: 4, message: /prefix=/ });
});

t.test('wrong or unknown credentials: 401 with responseCode 403; every 401 carries WWW-Authenticate', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  const basic = (user: string, secret: string) => `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;
  const cases: [string, string, Record<string, string>][] = [
    ['GET', `/api/handles/${ID}`, { authorization: 'Bearer nope' }],
    ['PUT', `/api/handles/${ID}`, { authorization: 'Bearer nope' }],
    ['GET', '/api/tokens', { authorization: basic('300%3A88.100%2FADMIN', 'wrong') }],
    ['GET', '/api/tokens', { authorization: 'Digest abc' }],
    ['POST', '/api/resolve', { authorization: 'Bearer ' }],
  ];
  for (const [method, path, headers] of cases) {
    const res = await c.call(method, path, { headers, ...(method === 'GET' ? {} : { body: { handles: [ID] } }) });
    t.equal(res.status, 401, `${method} ${path} ${headers.authorization}`);
    t.match(res.json, { responseCode: 403, code: 'IDN_AUTH_FAILED' });
    t.match(res.headers.get('www-authenticate'), /Basic realm="idnode".*Bearer realm="idnode"/);
  }
  const none = await c.call('GET', '/api/tokens');
  t.equal(none.status, 401);
  t.match(none.json, { responseCode: 402, code: 'IDN_AUTH_REQUIRED' });
  t.match(none.headers.get('www-authenticate'), /Basic .*Bearer /, 'a missing token too');
  const revokedId = (await c.call('GET', '/api/tokens', { token: ADMIN })).json.tokens.find((x: { role: string }) => x.role === 'registrar').id;
  await c.call('DELETE', `/api/tokens/${revokedId}`, { token: ADMIN });
  const revoked = await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: sampleValues });
  t.equal(revoked.status, 401);
  t.match(revoked.json, { responseCode: 403, message: /revoked/ });
  const scope = await c.call('GET', '/api/tokens', { token: await registrar(c, '88.100.8') });
  t.equal(scope.status, 403, 'a valid token without the permission stays 403');
  t.equal(scope.headers.get('www-authenticate'), null);
});

t.test("a 401 relayed from the upstream carries this node's WWW-Authenticate too", async (t) => {
  const up = createServer((_req, res) => {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ responseCode: 402, handle: '77.1/X', message: 'the upstream wants credentials' }));
  });
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => up.close(() => r())));
  const c = await startNode(t, { upstream: { url: `http://127.0.0.1:${(up.address() as AddressInfo).port}` } });
  for (const path of ['/api/handles/77.1/X', '/api/handles/77.1/X?type=URL']) {
    const res = await c.call('GET', path);
    t.equal(res.status, 401, path);
    t.match(res.json, { responseCode: 402 });
    t.match(res.headers.get('www-authenticate'), /Basic realm="idnode", Bearer realm="idnode"/, path);
  }
});

t.test('CORS: resolution from any origin (fast path hit and miss, fastify, preflight); writes only from cors.writeOrigins', async (t) => {
  const c = await startNode(t, { cors: { writeOrigins: 'https://console.example, https://ops.example' } });
  const reg = await registrar(c);
  await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: sampleValues });
  const origin = { origin: 'https://anyone.example' };

  const miss = await c.call('GET', `/api/handles/${ID}`, { headers: origin });
  t.match(miss.headers.get('cache-status'), /fwd=uri-miss/, 'a miss');
  t.equal(miss.headers.get('access-control-allow-origin'), '*');
  await c.call('GET', `/api/handles/${ID}`, { headers: origin }); // admission stores an answer on its second miss
  const hit = await c.call('GET', `/api/handles/${ID}`, { headers: origin });
  t.equal(hit.headers.get('cache-status'), 'idnode; hit', 'a hit');
  t.equal(hit.headers.get('access-control-allow-origin'), '*');
  const noOrigin = await c.call('GET', `/api/handles/${ID}`);
  t.equal(noOrigin.headers.get('access-control-allow-origin'), '*', 'the same answer without Origin, as fastify gives it');
  const notModified = await c.call('GET', `/api/handles/${ID}`, { headers: { ...origin, 'if-none-match': hit.headers.get('etag')! } });
  t.equal(notModified.status, 304);
  t.equal(notModified.headers.get('access-control-allow-origin'), '*', '304');
  const head = await c.call('HEAD', `/api/handles/${ID}`, { headers: origin });
  t.equal(head.headers.get('access-control-allow-origin'), '*', 'HEAD');
  const notFound = await c.call('GET', '/api/handles/88.100.7/NOPE', { headers: origin });
  t.equal(notFound.status, 404);
  t.equal(notFound.headers.get('access-control-allow-origin'), '*', 'a not-found answer is readable too');
  const filtered = await c.call('GET', `/api/handles/${ID}?type=URL`, { headers: origin });
  t.equal(filtered.headers.get('access-control-allow-origin'), '*', 'answered by fastify');
  const batch = await c.call('POST', '/api/resolve', { headers: origin, body: { handles: [ID] } });
  t.equal(batch.headers.get('access-control-allow-origin'), '*', 'batch resolve');

  const preflight = (path: string, method: string, from: string) =>
    c.call('OPTIONS', path, { headers: { origin: from, 'access-control-request-method': method, 'access-control-request-headers': 'content-type' } });
  const pre = await preflight(`/api/handles/${ID}`, 'GET', 'https://anyone.example');
  t.equal(pre.status, 204);
  t.equal(pre.headers.get('access-control-allow-origin'), '*');
  t.match(pre.headers.get('access-control-allow-methods'), /GET/);
  const preBatch = await preflight('/api/resolve', 'POST', 'https://anyone.example');
  t.equal(preBatch.headers.get('access-control-allow-origin'), '*');
  t.match(preBatch.headers.get('access-control-allow-headers'), /content-type/);

  const writeAny = await preflight(`/api/handles/${ID}`, 'PUT', 'https://anyone.example');
  t.equal(writeAny.headers.get('access-control-allow-origin'), null, 'a write preflight from elsewhere is not allowed');
  const writeOk = await preflight(`/api/handles/${ID}`, 'PUT', 'https://ops.example');
  t.equal(writeOk.status, 204);
  t.equal(writeOk.headers.get('access-control-allow-origin'), 'https://ops.example');
  t.match(writeOk.headers.get('access-control-allow-methods'), /PUT/);
  const put = await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: sampleValues, headers: { origin: 'https://console.example' } });
  t.equal(put.status, 200);
  t.equal(put.headers.get('access-control-allow-origin'), 'https://console.example');
  const putElsewhere = await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: sampleValues, headers: origin });
  t.equal(putElsewhere.headers.get('access-control-allow-origin'), null, 'a write from another origin gets no CORS header');
  const list = await c.call('GET', '/api/handles?prefix=88.100.7', { token: reg, headers: origin });
  t.equal(list.headers.get('access-control-allow-origin'), null, 'listing is not resolution');

  // A forwarded miss the fast path answers with an error: the upstream refuses connections.
  const lone = await startNode(t, { upstream: { url: 'http://127.0.0.1:1', timeoutMs: 2000 } });
  const failed = await lone.call('GET', '/api/handles/77.1/X', { headers: origin });
  t.ok(failed.status >= 500, `upstream down: ${failed.status}`);
  t.equal(failed.headers.get('access-control-allow-origin'), '*', 'a failed forwarded resolution');

  const closed = await startNode(t);
  const none = await closed.call('OPTIONS', '/api/tokens', { headers: { origin: 'https://console.example', 'access-control-request-method': 'POST' } });
  t.equal(none.headers.get('access-control-allow-origin'), null, 'by default no origin may write');
});

t.test('deep JSON is 400 at parse time, in bodies and in each bulk line; huge numbers in queries are 400', async (t) => {
  const c = await startNode(t, { limits: { jsonMaxDepth: 16 } });
  const reg = await registrar(c);
  const deep = (n: number) => `${'['.repeat(n)}1${']'.repeat(n)}`;
  const bodies: [string, string, string][] = [
    ['PUT', `/api/handles/${ID}`, `{"values":[{"index":1,"type":"URL","data":{"format":"string","value":${deep(5000)}}}]}`],
    ['PUT', `/api/handles/${ID}`, deep(5000)],
    ['POST', '/api/resolve', `{"handles":${deep(5000)}}`],
    ['POST', '/api/events', `{"type":"aggregation","action":"ADD","parent":"${ID}","children":${deep(20)},"eventTime":"2026-01-01T00:00:00Z"}`],
  ];
  for (const [method, path, body] of bodies) {
    const res = await c.call(method, path, { token: reg, body });
    t.equal(res.status, 400, `${method} ${path}`);
    t.match(res.json, { responseCode: 4, code: 'IDN_BODY_UNPARSABLE', message: /deeper than 16 levels \(config limits\.jsonMaxDepth\)/ });
  }
  const defaults = await startNode(t);
  const dflt = await defaults.call('PUT', '/api/handles/88.100/DEEP', { token: ADMIN, body: `{"values":${deep(5000)}}` });
  t.equal(dflt.status, 400, 'the default bound (64) holds too');
  t.match(dflt.json, { code: 'IDN_BODY_UNPARSABLE', message: /deeper than 64 levels/ });
  const atLimit = `{"values":[{"index":1,"type":"URL","data":{"format":"string","value":${deep(12)}}}]}`;
  t.not((await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: atLimit })).json.code, 'IDN_BODY_UNPARSABLE', '16 levels parse');
  const strings = `{"values":[{"index":1,"type":"URL","data":"${'['.repeat(100)}\\"{{"}]}`;
  t.equal((await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: strings })).status, 200, 'brackets inside strings do not count');

  const ndjson = [
    JSON.stringify({ handle: '88.100.7/B-1', values: sampleValues }),
    `{"handle":"88.100.7/B-2","values":[{"index":1,"type":"URL","data":{"format":"string","value":${deep(5000)}}}]}`,
    JSON.stringify({ handle: '88.100.7/B-3', values: sampleValues }),
  ].join('\n');
  const bulk = await c.call('POST', '/api/prefixes/88.100.7/handles', { token: reg, body: ndjson, headers: { 'content-type': 'application/x-ndjson' } });
  t.equal(bulk.status, 200);
  const lines = bulk.text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.match(lines[0], { line: 1, responseCode: 1 });
  t.match(lines[1], { line: 2, responseCode: 4, message: /line 2 nests .* deeper than 16 levels/ });
  t.match(lines[2], { line: 3, responseCode: 1 });
  t.match(lines[3], { summary: true, ok: 2, failed: 1 });

  const auditor = (await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'auditor' } })).json.secret;
  const queries: [string, string][] = [
    [`/api/handles?prefix=88.100.7&page=1e309&pageSize=1`, reg],
    [`/api/handles?prefix=88.100.7&page=1e20&pageSize=10`, reg],
    [`/api/handles?prefix=88.100.7&pageSize=1e309`, reg],
    [`/api/handles?prefix=88.100.7&page=1.5&pageSize=1`, reg],
    [`/api/handles/${ID}?index=1e309`, reg],
    [`/api/handles/${ID}?index=99999999999`, reg],
    [`/api/lineage/${ID}?depth=1e309`, auditor],
    [`/api/history/${ID}?after=1e309`, auditor],
    [`/api/history/${ID}?limit=1e20`, auditor],
    [`/api/audit?after=1e309`, ADMIN],
    [`/api/audit?limit=1e20`, ADMIN],
    [`/api/sync/reports?after=1e309`, ADMIN],
  ];
  for (const [path, token] of queries) {
    const res = await c.call('GET', path, { token });
    t.equal(res.status, 400, path);
    t.match(res.json, { responseCode: 4, code: 'IDN_BAD_REQUEST' }, path);
  }
});

t.test('HEAD answers carry headers only; absolute-form targets resolve their path', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: sampleValues });
  const bad = await rawRequest(c.url, Buffer.from('HEAD /api/handles/88.100.7/\xff', 'latin1'));
  t.equal(bad.status, 400);
  t.equal(bad.body, '', 'an unparsable HEAD request: no body');
  const badGet = await rawRequest(c.url, Buffer.from('GET /api/handles/88.100.7/\xff', 'latin1'));
  t.match(JSON.parse(badGet.body), { code: 'IDN_INVALID_IDENTIFIER' }, 'GET still gets the body');
  for (const path of ['/api/handles/88.100.7/NOPE', '/api/handles/88.100.7/NOPE?type=URL', '/nothing', '/api/handles/88..7/x', '/api/tokens']) {
    const res = await rawRequest(c.url, `HEAD ${path}`);
    t.ok(res.status >= 400, `HEAD ${path}: ${res.status}`);
    t.equal(res.body, '', `HEAD ${path}: no body`);
  }

  const abs = await rawRequest(c.url, `GET http://test/api/handles/${ID}?type=URL`);
  t.equal(abs.status, 200);
  t.match(JSON.parse(abs.body), { responseCode: 1, handle: ID, values: [{ index: 1, type: 'URL' }] });
  const absPlain = await rawRequest(c.url, `GET ${c.url}/api/handles/${ID}`);
  t.equal(absPlain.status, 200, "with the node's own host and port");
  t.match(JSON.parse(absPlain.body), { handle: ID });
  const absMissing = await rawRequest(c.url, 'GET http://test/api/handles/88.100.7/NOPE');
  t.match(JSON.parse(absMissing.body), { responseCode: 100, handle: '88.100.7/NOPE' }, 'the identifier is the path, not the URL');
});

t.test('/metrics and /readyz show the upstream as an origin only; nosniff everywhere; CSP on /docs', async (t) => {
  const up = await startNode(t, { homed: ['88'] });
  const withSecret = up.url.replace('http://', 'http://user:hunter2@') + '/private/path';
  const c = await startNode(t, { upstream: { url: withSecret, token: 'tok-secret' } });
  await c.call('GET', '/api/handles/88.200/X');
  const ready = await c.call('GET', '/readyz');
  t.equal(ready.json.upstream.url, up.url);
  t.notMatch(ready.text, /hunter2|private|user/, 'no credentials or path in /readyz');
  t.ok(ready.json.upstream.origins[up.url], 'origins keyed by origin');
  const metrics = await c.call('GET', '/metrics');
  t.notMatch(metrics.text, /hunter2|private\/path/, 'no credentials or path in /metrics');
  t.match(metrics.text, new RegExp(`idnode_upstream_request_seconds_count\\{origin="${up.url.replace(/[.]/g, '\\.')}"\\} 1`));

  // A node with an upstream keeps new prefixes pending: the rest runs on a node of its own.
  const d = await startNode(t);
  const reg = await registrar(d);
  await d.call('PUT', `/api/handles/${ID}`, { token: reg, body: sampleValues });
  await d.call('GET', `/api/handles/${ID}`);
  const answers = [
    await d.call('GET', `/api/handles/${ID}`),
    await d.call('GET', `/api/handles/${ID}`, { headers: { 'if-none-match': (await d.call('GET', `/api/handles/${ID}`)).headers.get('etag')! } }),
    await d.call('GET', '/api/handles/88.100.7/NOPE'),
    await d.call('GET', `/api/handles/${ID}?pretty`),
    await d.call('GET', '/api/tokens'),
    await d.call('GET', '/healthz'),
    metrics,
    await d.call('GET', '/docs/'),
    await d.call('GET', '/nothing'),
  ];
  for (const a of answers) t.equal(a.headers.get('x-content-type-options'), 'nosniff', `${a.status} ${a.text.slice(0, 30)}`);
  t.equal(answers[1]!.status, 304);
  const docs = answers[7]!;
  t.equal(docs.status, 200);
  t.match(docs.headers.get('content-security-policy'), /default-src 'self'/);
  t.match(docs.headers.get('content-security-policy'), /object-src 'none'/);
});

const indexes = (a: Answer) => (a.json.values as Array<{ index: number }>).map((v) => v.index);

t.test('PUT ?index=&overwrite=false adds new indexes (201); an index already there is 409/201; a missing record 404/100', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: sampleValues });
  const added = await c.call('PUT', `/api/handles/${ID}?index=5&index=4&overwrite=false`, {
    token: reg,
    body: [
      { index: 5, type: 'note', data: 'five' },
      { index: 4, type: 'note', data: 'four' },
    ],
  });
  t.equal(added.status, 201, 'only new indexes: added');
  t.same(added.json, { responseCode: 1, handle: ID });
  t.same(indexes(await c.call('GET', `/api/handles/${ID}`)), [1, 2, 3, 4, 5]);

  const taken = await c.call('PUT', `/api/handles/${ID}?index=2,6&overwrite=false`, {
    token: reg,
    body: [
      { index: 2, type: 'name', data: 'renamed' },
      { index: 6, type: 'note', data: 'six' },
    ],
  });
  t.equal(taken.status, 409);
  t.match(taken.json, { responseCode: 201, code: 'IDN_VALUE_EXISTS', handle: ID, message: /already has a value at index 2; send overwrite=true/ });
  const after = await c.call('GET', `/api/handles/${ID}`);
  t.same(indexes(after), [1, 2, 3, 4, 5], 'nothing of a refused write is stored');
  t.equal(after.json.values[1].data.value, 'Brake caliper JH-C320');

  const various = await c.call('PUT', `/api/handles/${ID}?index=various&overwrite=false`, { token: reg, body: [{ index: 1, type: 'URL', data: 'x' }] });
  t.match(various.json, { responseCode: 201, code: 'IDN_VALUE_EXISTS' }, 'index=various too');
  const replace = await c.call('PUT', `/api/handles/${ID}?index=2&overwrite=true`, { token: reg, body: [{ index: 2, type: 'name', data: 'renamed' }] });
  t.equal(replace.status, 200, 'overwrite=true still replaces');

  // As the reference adds values to a handle: a missing handle is "not found" (HANDLE-NOTES is silent; docs/API.md §3.2).
  const missing = await c.call('PUT', '/api/handles/88.100.7/NONE?index=1&overwrite=false', { token: reg, body: [{ index: 1, type: 'URL', data: 'x' }] });
  t.equal(missing.status, 404);
  t.match(missing.json, { responseCode: 100, code: 'IDN_NOT_FOUND' });
  const plain = await c.call('PUT', `/api/handles/${ID}?overwrite=false`, { token: reg, body: sampleValues });
  t.match(plain.json, { responseCode: 101, code: 'IDN_HANDLE_EXISTS' }, 'without index= an existing record is still 409/101');
});

t.test('GET → edit → PUT back: the full GET answer is a valid body', async (t) => {
  // An injected clock: on the wall clock the edit's second may or may not differ from the create's.
  const clock = testClock(Date.parse('2026-11-30T08:00:00Z'));
  const c = await startNode(t, {}, { now: clock.now });
  const reg = await registrar(c);
  await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: withPrivate });
  const got = await c.call('GET', `/api/handles/${ID}`, { token: reg });
  t.match(got.json, { responseCode: 1, handle: ID });
  const created = got.json.values[0].timestamp as string;
  clock.advance(60_000);
  const edited = structuredClone(got.json);
  edited.values[1].data.value = 'Brake caliper JH-C321';
  // A timestamp in the body is not taken: the node keeps its own.
  edited.values[0].timestamp = '2000-01-01T00:00:00Z';
  const put = await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: edited });
  t.equal(put.status, 200, put.text);
  t.same(put.json, { responseCode: 1, handle: ID });
  const again = await c.call('GET', `/api/handles/${ID}`, { token: reg });
  t.equal(again.json.values[1].data.value, 'Brake caliper JH-C321');
  t.same(
    again.json.values.map((v: { timestamp: string }) => v.timestamp === created),
    [true, false, true, true],
    'timestamps sent back are ignored; unchanged values keep theirs, the edited one takes the time of the edit',
  );
  t.equal(again.json.values[3].permissions, '1100', 'permissions survive the round trip');
  const unchanged = await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: again.json });
  t.equal(unchanged.status, 200, 'sending the answer back unchanged');
  const other = await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: { ...again.json, handle: '88.100.7/OTHER' } });
  t.match(
    other.json,
    { responseCode: 202, message: /names handle "88.100.7\/OTHER" but the URL names/ },
    'a handle field naming another identifier is still refused',
  );
});

t.test('Handle.Net bodies: one bare value, unknown fields, "1" indexes, HS_ADMIN index "200" padded to 12 flags; bad indexes 400', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  const bare = await c.call('PUT', '/api/handles/88.100.7/BARE', { token: reg, body: { index: 1, type: 'URL', data: 'https://x.example/1' } });
  t.equal(bare.status, 200, bare.text);
  t.same(indexes(await c.call('GET', '/api/handles/88.100.7/BARE')), [1], 'a single bare value object');

  const lenient = await c.call('PUT', '/api/handles/88.100.7/LENIENT', {
    token: reg,
    body: {
      responseCode: 1,
      note: 'ignored',
      values: [
        { index: '1', type: 'URL', data: { format: 'string', value: 'https://x.example/2', note: 'x' }, colour: 'red' },
        { index: 100, type: 'HS_ADMIN', data: { value: { index: '200', handle: '0.NA/88.100.7', permissions: '0111' }, format: 'admin' } },
      ],
    },
  });
  t.equal(lenient.status, 200, lenient.text);
  const got = await c.call('GET', '/api/handles/88.100.7/LENIENT');
  t.same(got.json.values[0], {
    index: 1,
    type: 'URL',
    data: { format: 'string', value: 'https://x.example/2' },
    ttl: 86400,
    timestamp: got.json.values[0].timestamp,
  });
  t.same(got.json.values[1].data, { format: 'admin', value: { handle: '0.NA/88.100.7', index: 200, permissions: '011100000000' } });

  for (const index of ['one', '1.5', 1.5, '0', 0, '4294967296', 4294967296, '-3', '']) {
    const res = await c.call('PUT', '/api/handles/88.100.7/BAD', { token: reg, body: [{ index, type: 'URL', data: 'x' }] });
    t.equal(res.status, 400, JSON.stringify(index));
    t.match(res.json, { responseCode: 202, code: 'IDN_INVALID_VALUE', message: /values\[0\]\.index must be an integer from 1 to 4294967295/ });
  }
  const badAdmin = await c.call('PUT', '/api/handles/88.100.7/BAD', {
    token: reg,
    body: [{ index: 100, type: 'HS_ADMIN', data: { format: 'admin', value: { index: 'two hundred', handle: '0.NA/88.100.7', permissions: '0111' } } }],
  });
  t.match(badAdmin.json, { responseCode: 202, message: /values\[0\]\.data\.value must be \{"handle"/ });

  const ndjson = [
    JSON.stringify({ handle: '88.100.7/NL-1', responseCode: 1, values: [{ index: '1', type: 'URL', data: 'x', colour: 'red' }] }),
    JSON.stringify({ handle: '88.100.7/NL-2', values: { index: 1, type: 'URL', data: 'y' } }),
    JSON.stringify({ handle: '88.100.7/NL-3', values: [{ index: 'x', type: 'URL', data: 'y' }] }),
  ].join('\n');
  const bulk = await c.call('POST', '/api/prefixes/88.100.7/handles', { token: reg, body: ndjson, headers: { 'content-type': 'application/x-ndjson' } });
  const lines = bulk.text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.match(lines[0], { line: 1, responseCode: 1 }, 'bulk: unknown fields on the line and in a value are ignored');
  t.match(lines[1], { line: 2, responseCode: 1 }, 'bulk: one bare value');
  t.match(lines[2], { line: 3, responseCode: 202, message: /index must be an integer/ });
});

t.test('idnode bodies stay strict, but a GET → PATCH/PUT round trip of a prefix or template works', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  const prefix = await c.call('GET', '/api/prefixes/88.100.7', { token: ADMIN });
  t.ok('parent' in prefix.json && 'prefix' in prefix.json, 'the GET answer has read-only fields');
  const patched = await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { ...prefix.json, owner: { name: 'Acme Engines' } } });
  t.equal(patched.status, 200, patched.text);
  t.equal(patched.json.owner.name, 'Acme Engines');
  const typo = await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { ownr: { name: 'x' } } });
  t.match(typo.json, { responseCode: 202, message: /unknown field "ownr"/ }, 'a typo in an idnode-only field is caught');
  const wrong = await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { ...prefix.json, prefix: '88.100.8' } });
  t.match(wrong.json, { responseCode: 202, message: /names prefix "88.100.8" but the URL names 88.100.7/ });

  const items = [{ name: 'batchNo', idIndex: 2001, idType: 'batch', dataType: 'string', required: true }];
  t.equal((await c.call('PUT', '/api/templates/88.100.7/1.0', { token: reg, body: { name: 'Engines', items } })).status, 201);
  const tpl = await c.call('GET', '/api/templates/88.100.7/1.0');
  t.ok('createdAt' in tpl.json && 'used' in tpl.json);
  const back = await c.call('PUT', '/api/templates/88.100.7/1.0', { token: reg, body: { ...tpl.json, name: 'Engines v1' } });
  t.equal(back.status, 200, back.text);
  t.equal(back.json.name, 'Engines v1');
  const tplTypo = await c.call('PUT', '/api/templates/88.100.7/1.0', { token: reg, body: { items, nmae: 'x' } });
  t.match(tplTypo.json, { responseCode: 202, message: /unknown field "nmae"/ });
  const tplWrong = await c.call('PUT', '/api/templates/88.100.7/1.0', { token: reg, body: { ...tpl.json, version: '2.0' } });
  t.match(tplWrong.json, { responseCode: 202, message: /names version "2.0" but the URL names 1.0/ });
});

t.test('after PUT ?index= the values come back ordered by index', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  await c.call('PUT', `/api/handles/${ID}`, {
    token: reg,
    body: [
      { index: 100, type: 'HS_ADMIN', data: { format: 'admin', value: { handle: '0.NA/88.100.7', index: 200, permissions: '011111110011' } } },
      { index: 2, type: 'name', data: 'n' },
    ],
  });
  t.same(indexes(await c.call('GET', `/api/handles/${ID}`)), [100, 2], 'a whole PUT keeps the order written');
  await c.call('PUT', `/api/handles/${ID}?index=1`, { token: reg, body: [{ index: 1, type: 'URL', data: 'https://x.example/' }] });
  t.same(indexes(await c.call('GET', `/api/handles/${ID}`)), [1, 2, 100]);
  await c.call('PUT', `/api/handles/${ID}?index=50`, { token: reg, body: [{ index: 50, type: 'note', data: 'x' }] });
  t.same(indexes(await c.call('GET', `/api/handles/${ID}`)), [1, 2, 50, 100]);
});

t.test('DELETE ?index= of an index the record lacks: 400 with responseCode 200', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: sampleValues });
  const res = await c.call('DELETE', `/api/handles/${ID}?index=3,42`, { token: reg });
  t.equal(res.status, 400);
  t.match(res.json, { responseCode: 200, code: 'IDN_VALUE_NOT_FOUND', handle: ID, message: /no value at index 42; nothing was removed/ });
  t.same(indexes(await c.call('GET', `/api/handles/${ID}`)), [1, 2, 3], 'nothing removed');
});

t.test('answers echo the identifier as the client spelt it; the cached bytes and ETag stay the record’s', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  t.equal((await c.call('PUT', '/api/handles/88.100.7/Engine-1', { token: reg, body: sampleValues })).json.handle, '88.100.7/Engine-1');
  const first = await c.call('GET', '/api/handles/88.100.7/eNgine-1');
  t.equal(first.headers.get('cache-status'), 'idnode; fwd=uri-miss; detail=not-admitted', 'a first miss is not stored (admission)');
  t.equal(first.json.handle, '88.100.7/eNgine-1', 'a miss that is not stored');
  const miss = await c.call('GET', '/api/handles/88.100.7/engine-1');
  t.equal(miss.headers.get('cache-status'), 'idnode; fwd=uri-miss; stored');
  t.equal(miss.json.handle, '88.100.7/engine-1', 'a miss through the fast path');
  const same = await c.call('GET', '/api/handles/88.100.7/Engine-1');
  t.equal(same.headers.get('cache-status'), 'idnode; hit');
  t.equal(same.json.handle, '88.100.7/Engine-1', 'a hit of the stored spelling');
  const hit = await c.call('GET', '/api/handles/88.100.7/ENGINE-1');
  t.equal(hit.headers.get('cache-status'), 'idnode; hit');
  t.equal(hit.json.handle, '88.100.7/ENGINE-1', 'a hit of another spelling');
  t.equal(hit.text.replace('ENGINE-1', 'Engine-1'), same.text, 'only the handle differs');
  t.equal(hit.headers.get('content-length'), same.headers.get('content-length'));
  t.equal(hit.headers.get('etag'), same.headers.get('etag'), "the record's ETag");
  const notModified = await c.call('GET', '/api/handles/88.100.7/eNgInE-1', { headers: { 'if-none-match': same.headers.get('etag')! } });
  t.equal(notModified.status, 304);
  const head = await c.call('HEAD', '/api/handles/88.100.7/ENGINE-1');
  t.equal(head.headers.get('content-length'), same.headers.get('content-length'));

  t.equal((await c.call('GET', '/api/handles/88.100.7/ENGINE-1?type=URL')).json.handle, '88.100.7/ENGINE-1', 'fastify, filtered');
  t.equal((await c.call('GET', '/api/handles/88.100.7/ENGINE-1?pretty')).json.handle, '88.100.7/ENGINE-1', 'fastify, pretty');
  t.equal((await c.call('GET', '/api/handles/88.100.7/engine-1', { token: reg })).json.handle, '88.100.7/engine-1', 'fastify, with a token');
  t.equal((await c.call('GET', '/api/handles/88.100.7/engine-1?callback=cb')).text.includes('"handle":"88.100.7/engine-1"'), true, 'JSONP');
  const short = await c.call('GET', '/88.100.7/ENGINE-1', { headers: { accept: 'application/json' } });
  t.equal(short.status, 200);
  t.equal(short.json.handle, '88.100.7/ENGINE-1', 'the short URL');
  const page = await c.call('GET', '/88.100.7/ENGINE-1', { headers: { accept: 'text/html' } });
  t.equal(page.status, 200);
  t.match(page.text, /Engine-1|ENGINE-1/, 'the page still renders');
  const batch = await c.call('POST', '/api/resolve', { body: { handles: ['88.100.7/engine-1', '88.100.7/Engine-1', '88.100.7/ENGINE-1'] } });
  t.same(
    batch.json.results.map((r: { handle: string }) => r.handle),
    ['88.100.7/engine-1', '88.100.7/Engine-1', '88.100.7/ENGINE-1'],
    'batch',
  );

  await c.call('GET', '/api/handles/88.100.7/Nope');
  await c.call('GET', '/api/handles/88.100.7/nope');
  const nope = await c.call('GET', '/api/handles/88.100.7/NOPE');
  t.equal(nope.headers.get('cache-status'), 'idnode; hit', 'a cached not-found');
  t.match(nope.json, { responseCode: 100, handle: '88.100.7/NOPE', message: /^88\.100\.7\/NOPE / });
  t.equal(nope.headers.get('content-length'), String(Buffer.byteLength(nope.text)));
  await c.call('GET', '/api/handles/0.NA/88.100.7');
  t.equal((await c.call('GET', '/api/handles/0.na/88.100.7')).json.handle, '0.na/88.100.7', 'a prefix handle');
  t.equal((await c.call('GET', '/api/handles/88.100.7')).json.handle, '0.NA/88.100.7', 'a slashless path still names the prefix handle');

  const put = await c.call('PUT', '/api/handles/88.100.7/eNGINE-1?index=9', { token: reg, body: [{ index: 9, type: 'n', data: 'v' }] });
  t.same(put.json, { responseCode: 1, handle: '88.100.7/eNGINE-1' }, 'PUT');
  const listed = await c.call('GET', '/api/handles?prefix=88.100.7', { token: reg });
  t.same(listed.json.handles, ['88.100.7/Engine-1'], 'the stored spelling is the first one');
  const del = await c.call('DELETE', '/api/handles/88.100.7/ENGINE-1', { token: reg });
  t.same(del.json, { responseCode: 1, handle: '88.100.7/ENGINE-1' }, 'DELETE');

  // The stored spelling answers without a copy: the same spelling leaves the cached body as it is.
  const entry = { status: 200, body: same.text, bytes: Buffer.byteLength(same.text), etag: undefined, maxAge: 1, partial: false };
  t.equal(respell(entry, '88.100.7/Engine-1'), undefined);
  t.same(respell(entry, '88.100.7/ENGINE-1'), { body: hit.text, bytes: entry.bytes });
  const quoted = { ...entry, body: '{"responseCode":1,"handle":"88.100.7/a\\"b","values":[]}' };
  t.equal(respell(quoted, '88.100.7/a"b'), undefined, 'an escaped spelling that is the same');
  t.same(JSON.parse(respell(quoted, '88.100.7/A"B')!.body), { responseCode: 1, handle: '88.100.7/A"B', values: [] });
  const foreignBody = '{ "values": [{"type": "handle", "handle": "77.1/Y"}],\n  "handle" : "77.1/X", "responseCode": 1 }';
  const foreign = { ...entry, body: foreignBody, bytes: Buffer.byteLength(foreignBody) };
  t.same(
    respell(foreign, '77.1/x'),
    { body: foreignBody.replace('"77.1/X"', '"77.1/x"'), bytes: foreign.bytes },
    'another shape: the top-level handle, spliced',
  );
  t.equal(respell(foreign, '77.1/X'), undefined);
  t.equal(respell({ ...entry, body: '{"responseCode":2,"values":[{"handle":"77.1/X"}]}' }, '77.1/x'), undefined, 'no top-level handle: nothing to rename');
});

/**
 * The HTTP requests EUDAT pyhandle (github.com/EUDAT-B2SAFE/PYHANDLE, commit 1f3e075) makes,
 * byte for byte as recorded by running it against idnode with http.client's debug output:
 * pyhandle/handlesystemconnector.py builds them (`__get_headers`: Accept on GET, Basic
 * Authorization and Content-Type on PUT/DELETE; `make_handle_URL`: `?index=N&...&overwrite=`;
 * `send_handle_put_request`: `json.dumps({'values': entries})`), the callers are in
 * pyhandle/client/resthandleclient.py. Asserted: what pyhandle needs to succeed, which is what
 * the reference server answers (pyhandle/hsresponses.py reads status and responseCode).
 */
t.test('pyhandle replay: create, case-variant reads, modify, add and delete a value, delete, wrong password', async (t) => {
  const c = await startNode(t);
  const H = '88.100.7/PyHandle-Test-1';
  const V = '88.100.7/pyhandle-TEST-1';
  const python = { 'user-agent': 'python-requests/2.28.1', 'accept-encoding': 'gzip, deflate' };
  // utilhandle.create_authentication_string: quote(username) keeps "/", then base64("user:password").
  const basic = (pw: string) => `Basic ${Buffer.from(`300%3A88.100/ADMIN:${pw}`).toString('base64')}`;
  const get = (client: Client, handle: string) => client.call('GET', `/api/handles/${handle}`, { headers: { ...python, accept: 'application/json' } });
  const write = (method: string, path: string, pw: string, body?: string) =>
    c.call(method, path, {
      headers: { ...python, accept: '*/*', authorization: basic(pw), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body } : {}),
    });

  // Set-up, not pyhandle: the username handle 300:88.100/ADMIN must exist (the key at 300 is unused by idnode).
  await c.call('PUT', '/api/handles/88.100/ADMIN', { token: ADMIN, body: [{ index: 300, type: 'HS_SECKEY', data: 'unused', permissions: '1100' }] });

  // RESTHandleClient.__init__ → HandleSystemConnector.check_if_username_exists: the answer must name the handle asked.
  const user = await get(c, '88.100/ADMIN');
  t.equal(user.status, 200);
  t.match(user.json, { responseCode: 1, handle: '88.100/ADMIN' });

  // register_handle(H, 'https://example.com/py/1', checksum='abc123') → register_handle_kv: GET (must be 404/100), then PUT.
  t.match((await get(c, H)).json, { responseCode: 100 });
  const create = await write(
    'PUT',
    `/api/handles/${H}?overwrite=false`,
    ADMIN,
    '{"values": [{"index": 100, "type": "HS_ADMIN", "data": {"value": {"index": "200", "handle": "0.NA/88.100.7", "permissions": "011111110011"}, "format": "admin"}}, {"index": 1, "type": "URL", "data": "https://example.com/py/1"}, {"index": 2, "type": "CHECKSUM", "data": "abc123"}]}',
  );
  t.equal(create.status, 201, create.text);
  t.same(create.json, { responseCode: 1, handle: H }, 'hsresponses.was_handle_created; pyhandle returns json["handle"]');

  // retrieve_handle_record_json(V) and get_value_from_handle(V, 'URL'): raise unless json["handle"] == V.
  for (let i = 0; i < 2; i++) {
    const read = await get(c, V);
    t.equal(read.status, 200);
    t.equal(read.json.handle, V, `read ${i + 1} of the case variant (a miss, then a hit)`);
    t.same(read.json.values.find((v: { type: string }) => v.type === 'HS_ADMIN').data, {
      format: 'admin',
      value: { handle: '0.NA/88.100.7', index: 200, permissions: '011111110011' },
    });
    t.equal(read.json.values.find((v: { type: string }) => v.type === 'URL').data.value, 'https://example.com/py/1');
  }

  // modify_handle_value(H, URL='https://example.com/py/2'): GET, then the entry read back (timestamp popped), index= and overwrite=true.
  t.equal((await get(c, H)).status, 200);
  const modify = await write(
    'PUT',
    `/api/handles/${H}?index=1&overwrite=true`,
    ADMIN,
    '{"values": [{"index": 1, "type": "URL", "data": "https://example.com/py/2", "ttl": 86400}]}',
  );
  t.equal(modify.status, 200, modify.text);
  t.same(modify.json, { responseCode: 1, handle: H }, 'hsresponses.handle_success');

  // modify_handle_value(H, EMAIL='ops@example.com'): a new key gets __make_another_index (3).
  t.equal((await get(c, H)).status, 200);
  const add = await write('PUT', `/api/handles/${H}?index=3&overwrite=true`, ADMIN, '{"values": [{"index": 3, "type": "EMAIL", "data": "ops@example.com"}]}');
  t.equal(add.status, 200, add.text);
  t.equal(add.json.responseCode, 1);
  const added = await get(c, H);
  t.same(indexes(added), [1, 2, 3, 100], 'ordered by index, as the reference answers');
  t.equal(added.json.values[0].data.value, 'https://example.com/py/2');

  // delete_handle_value(H, 'EMAIL'): GET, then DELETE ?index=3 (no body, no Content-Type).
  t.equal((await get(c, H)).status, 200);
  const delValue = await write('DELETE', `/api/handles/${H}?index=3`, ADMIN);
  t.equal(delValue.status, 200);
  t.same(delValue.json, { responseCode: 1, handle: H });
  // Sent again, the reference's answer is one pyhandle tolerates (hsresponses.values_not_found: 400 and 200).
  const delAgain = await write('DELETE', `/api/handles/${H}?index=3`, ADMIN);
  t.equal(delAgain.status, 400);
  t.equal(delAgain.json.responseCode, 200);
  t.same(indexes(await get(c, H)), [1, 2, 100]);

  // delete_handle(H): DELETE; then retrieve_handle_record_json(H) returns None on 404/100.
  const del = await write('DELETE', `/api/handles/${H}`, ADMIN);
  t.equal(del.status, 200);
  t.same(del.json, { responseCode: 1, handle: H });
  const gone = await get(c, H);
  t.equal(gone.status, 404);
  t.equal(gone.json.responseCode, 100, 'hsresponses.handle_not_found');

  // A client with a wrong password: the username check and the existence check pass, the PUT is refused.
  t.equal((await get(c, '88.100/ADMIN')).status, 200);
  t.equal((await get(c, H)).status, 404);
  const wrong = await write(
    'PUT',
    `/api/handles/${H}?overwrite=false`,
    'wrong-password',
    '{"values": [{"index": 100, "type": "HS_ADMIN", "data": {"value": {"index": "200", "handle": "0.NA/88.100.7", "permissions": "011111110011"}, "format": "admin"}}, {"index": 1, "type": "URL", "data": "https://example.com/py/1"}]}',
  );
  t.equal(wrong.status, 401, 'hsresponses.not_authenticated → HandleAuthenticationError');
  t.equal(wrong.json.responseCode, 403);
  t.equal((await get(c, H)).status, 404, 'nothing was written');
});
