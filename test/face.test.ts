/**
 * Pages for people: the short URL's negotiation over plain HTTP, then the pages in a real
 * browser (Chromium through playwright-core) at phone and desktop size.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import jsQRModule from 'jsqr';
import { type Browser, chromium, type Page } from 'playwright-core';
import { PNG } from 'pngjs';
import t, { type Test } from 'tap';
import { FOLD_AT, lineageSvg } from '../src/server/pages/graph.js';
import { labelList } from '../src/server/pages/index.js';
import { prefersHtml, pickLang } from '../src/server/pages/negotiate.js';
import { createSessions, sessionSecret } from '../src/server/pages/session.js';
import { request as httpRequest } from 'node:http';
import { openRegistry } from '../src/main.js';
import { ADMIN, type Client, listenLocal, registrar, startNode, testClock } from './helpers.js';

// jsqr is CommonJS with an ES-style default export: under Node's interop the function is `.default`.
type Decode = typeof jsQRModule.default;
const jsQR: Decode = (jsQRModule as unknown as { default?: Decode }).default ?? (jsQRModule as unknown as Decode);

const ID = '88.100.7/ENGINE-2026-000042';
const PAGE = `/${ID}`;
const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8';

const VALUES = [
  { index: 1, type: 'URL', data: 'https://acme.example/p/42' },
  { index: 2, type: 'name', data: '汽油发动机 HX-2.0T' },
  { index: 3, type: 'batch', data: { format: 'string', value: 'B-7' } },
  { index: 4, type: 'cost', data: 'SECRET-COST-12.5', permissions: '1100' },
  { index: 5, type: 'parts', data: '88.100.7/PART-0001' },
  { index: 6, type: 'EMAIL', data: 'quality@acme.example' },
  { index: 7, type: 'vendorCode', data: 'VC-9' },
];

/** A node with Acme's prefix, the engine record (one non-public value) and one part. */
async function seeded(t: Test, overrides: Record<string, unknown> = {}, opts: Parameters<typeof startNode>[2] = {}) {
  const c = await startNode(t, overrides, opts);
  await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.7', owner: { name: 'Acme Engines 艾克姆' } } });
  const reg = await registrar(c);
  const put = await c.call('PUT', `/api/handles/${ID}`, { token: reg, body: { values: VALUES } });
  if (put.status !== 200) throw new Error(put.text);
  await c.call('PUT', '/api/handles/88.100.7/PART-0001', { token: reg, body: [{ index: 2, type: 'name', data: 'Crankshaft' }] });
  return { ...c, reg };
}

async function get(c: Client, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(c.url + path, { headers, redirect: 'manual' });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

t.test('negotiation: JSON unless text/html is asked at least as high as JSON', async (t) => {
  t.equal(prefersHtml(undefined), false, 'no Accept');
  t.equal(prefersHtml('*/*'), false, '*/* alone');
  t.equal(prefersHtml('application/json'), false);
  t.equal(prefersHtml(BROWSER_ACCEPT), true, "a browser's Accept");
  t.equal(prefersHtml('text/html;q=0.5, application/json'), false, 'JSON ranked higher');
  t.equal(prefersHtml('application/json;q=0.5, text/html;q=0.5'), true, 'a tie goes to HTML');
  t.equal(prefersHtml('text/html;q=0'), false, 'q=0 refuses HTML');
  t.equal(prefersHtml('text/html, application/ld+json'), true, 'a +json type at the same q');
  t.equal(prefersHtml('text/html;q=0.8, application/vnd.x+json'), false, 'a +json type ranked higher');
  t.equal(pickLang(undefined, undefined), 'zh', 'Chinese by default');
  t.equal(pickLang(undefined, 'en-US,en;q=0.9'), 'en');
  t.equal(pickLang(undefined, 'fr, en;q=0.5, zh;q=0.8'), 'zh', 'the higher q of zh and en');
  t.equal(pickLang('en', 'zh-CN'), 'en', '?lang= wins');
  t.equal(pickLang('de', 'en'), 'en', 'an unknown ?lang= is ignored');
});

t.test('the short URL answers the /api/handles JSON to machine clients, with Vary and Link', async (t) => {
  const c = await seeded(t);
  const api = await get(c, `/api/handles/${ID}`);
  t.equal(api.status, 200);
  t.notMatch(api.text, /SECRET-COST/, 'the anonymous JSON has no non-public value');
  const link = `</api/handles/${ID}>; rel="alternate"; type="application/json"`;
  for (const accept of [undefined, '*/*', 'application/json', 'text/html;q=0.5, application/json']) {
    for (const round of ['first', 'second (cache hit on the fast path)']) {
      const r = await get(c, PAGE, accept === undefined ? {} : { accept });
      t.equal(r.status, 200, `${accept ?? 'no Accept'}, ${round}`);
      t.equal(r.text, api.text, `${accept ?? 'no Accept'}, ${round}: the same bytes as /api/handles`);
      t.match(r.headers.get('content-type'), /^application\/json/);
      t.equal(r.headers.get('vary'), 'Accept, Accept-Language');
      t.equal(r.headers.get('link'), link);
      t.equal(r.headers.get('etag'), api.headers.get('etag'));
    }
  }
  t.equal((await get(c, PAGE)).headers.get('cache-status'), 'idnode; hit', 'a repeated JSON request is a cache hit');
  const notModified = await get(c, PAGE, { 'if-none-match': api.headers.get('etag')! });
  t.equal(notModified.status, 304);
  t.equal(notModified.headers.get('vary'), 'Accept, Accept-Language', 'a 304 carries Vary too');

  const forced = await get(c, `${PAGE}?format=json`, { accept: BROWSER_ACCEPT });
  t.equal(forced.text, api.text, '?format=json wins over a browser Accept');
  const html = await get(c, `${PAGE}?format=html`);
  t.match(html.headers.get('content-type'), /^text\/html/, '?format=html wins over no Accept');
  const bad = await get(c, `${PAGE}?format=xml`);
  t.equal(bad.status, 400);
  t.match(JSON.parse(bad.text), { code: 'IDN_BAD_REQUEST', message: /format= must be "json" or "html"/ });

  const missingApi = await get(c, '/api/handles/88.100.7/NOPE');
  const missing = await get(c, '/88.100.7/NOPE');
  t.equal(missing.status, 404);
  t.equal(missing.text, missingApi.text, 'not found: the same JSON error as /api/handles');
  const prefix = await get(c, '/88.100.7');
  t.equal(prefix.text, (await get(c, '/api/handles/88.100.7')).text, 'the prefix handle');
  const withToken = await get(c, PAGE, { authorization: `Bearer ${c.reg}` });
  t.match(withToken.text, /SECRET-COST/, 'a token reads non-public values, as on /api/handles');
  t.equal(withToken.text, (await get(c, `/api/handles/${ID}`, { authorization: `Bearer ${c.reg}` })).text);
  const badPage = await get(c, PAGE, { authorization: 'Bearer wrong' });
  const badApi = await get(c, `/api/handles/${ID}`, { authorization: 'Bearer wrong' });
  t.equal(badPage.status, 401, 'a bad token is refused');
  t.equal(badPage.text, badApi.text, 'as on /api/handles');
  t.equal(badPage.headers.get('www-authenticate'), badApi.headers.get('www-authenticate'));
  const route = await get(c, '/api/nothing');
  t.equal(route.status, 404);
  t.match(JSON.parse(route.text), { code: 'IDN_ROUTE_NOT_FOUND' }, 'unknown API routes stay JSON 404s');
});

t.test('the page over plain HTTP: headers, public values only, caching, escaping', async (t) => {
  const c = await seeded(t);
  const r = await get(c, PAGE, { accept: BROWSER_ACCEPT });
  t.equal(r.status, 200);
  t.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
  t.equal(r.headers.get('vary'), 'Accept, Accept-Language, Cookie', 'HTML also varies by the login cookie');
  t.equal(r.headers.get('link'), `</api/handles/${ID}>; rel="alternate"; type="application/json"`);
  t.equal(r.headers.get('x-content-type-options'), 'nosniff');
  t.match(r.headers.get('content-security-policy'), /default-src 'none'/);
  t.notMatch(r.headers.get('content-security-policy'), /unsafe-inline/);
  t.match(r.headers.get('cache-control'), /^max-age=\d+$/);
  t.notMatch(r.text, /<script|style=/, 'no script and no inline style');
  t.notMatch(r.text, /SECRET-COST|\bcost\b/, 'no non-public value, nor its type');
  t.match(r.text, /汽油发动机 HX-2\.0T/);
  const again = await get(c, PAGE, { accept: BROWSER_ACCEPT, 'if-none-match': r.headers.get('etag')! });
  t.equal(again.status, 304, 'the page is cacheable by its ETag');
  const en = await get(c, PAGE, { accept: BROWSER_ACCEPT, 'accept-language': 'en-US,en;q=0.9' });
  t.not(en.headers.get('etag'), r.headers.get('etag'), 'each language is its own variant');
  t.match(en.text, /<html lang="en">/);
  const css = await get(c, '/face/style.css');
  t.equal(css.status, 200);
  t.match(css.headers.get('content-type'), /^text\/css/);

  const xss = await get(c, '/88.100.7/%3Cscript%3Ealert(1)%3C%2Fscript%3E', { accept: BROWSER_ACCEPT });
  t.equal(xss.status, 404);
  t.notMatch(xss.text, /<script>alert/, 'the identifier is escaped');
  t.match(xss.text, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  t.match(xss.text, /Acme Engines 艾克姆/, 'a 404 names the prefix owner');
  const malformed = await get(c, '/88.100.7/%ZZ', { accept: BROWSER_ACCEPT });
  t.equal(malformed.status, 400, 'a bad escape is a 400, not a 500 (refused before any route)');
  t.match(malformed.headers.get('content-type'), /^text\/html/, 'a browser gets a page (see the bad-escape test)');
  const malformedJson = await get(c, '/88.100.7/%ZZ');
  t.equal(malformedJson.status, 400);
  t.match(JSON.parse(malformedJson.text), { code: 'IDN_INVALID_IDENTIFIER' }, 'machines keep the Handle shape');
  const badId = await get(c, '/88..7/X', { accept: BROWSER_ACCEPT });
  t.equal(badId.status, 400, 'a malformed identifier is a 400 page');
  t.match(badId.headers.get('content-type'), /^text\/html/);

  const home = await get(c, '/', { accept: BROWSER_ACCEPT });
  t.equal(home.status, 200);
  t.match(home.text, /<form class="search" method="get" action="\/"/);
  const search = await get(c, `/?id=${encodeURIComponent(` ${ID} `)}&lang=en`);
  t.equal(search.status, 303);
  t.equal(search.headers.get('location'), `${PAGE}?lang=en`);
  const badSearch = await get(c, '/?id=88..1%2Fnothing-here');
  t.equal(badSearch.status, 400, 'a malformed search is a 400 page that says what to fix');
  t.match(badSearch.text, /88\.\.1\/nothing-here/);
  t.match(badSearch.text, /segment/);
});

t.test('QR codes and label sheets', async (t) => {
  const c = await seeded(t, { face: { labelsMax: 5 } });
  const qr = await get(c, `/qr${PAGE}`);
  t.equal(qr.status, 200);
  t.equal(qr.headers.get('content-type'), 'image/svg+xml');
  t.match(qr.headers.get('cache-control'), /max-age=/);
  t.ok(qr.headers.get('etag'));
  t.match(qr.text, /^<svg [^>]*viewBox="0 0 \d+ \d+"/);
  t.equal((await get(c, `/qr${PAGE}`, { 'if-none-match': qr.headers.get('etag')! })).status, 304);
  t.equal((await get(c, '/qr/not an id')).status, 400);

  t.same(labelList(undefined, '88.100.1/E-0009', '88.100.1/E-0011', 5), ['88.100.1/E-0009', '88.100.1/E-0010', '88.100.1/E-0011']);
  t.same(labelList('a.1/x, b.2/y', undefined, undefined, 5), ['a.1/x', 'b.2/y']);
  const sheet = await get(c, '/labels?from=88.100.7/L-001&to=88.100.7/L-005');
  t.equal(sheet.status, 200);
  t.equal(sheet.text.match(/<figure class="label">/g)?.length, 5, 'five labels: the bound itself');
  const over = await get(c, '/labels?from=88.100.7/L-001&to=88.100.7/L-006', { accept: BROWSER_ACCEPT });
  t.equal(over.status, 400);
  t.match(over.text, /face\.labelsMax/, 'the limit names its config key');
  const mixed = await get(c, '/labels?from=88.100.7/A-1&to=88.100.7/B-2');
  t.equal(mixed.status, 400);
  const none = await get(c, '/labels');
  t.equal(none.status, 400);
  t.match(none.text, /ids=a,b,c/);
});

t.test('face.redirect: the short URL acts as the Handle proxy for browsers', async (t) => {
  const c = await seeded(t, { face: { redirect: true } });
  const r = await get(c, PAGE, { accept: BROWSER_ACCEPT });
  t.equal(r.status, 302);
  t.equal(r.headers.get('location'), 'https://acme.example/p/42');
  t.equal(r.headers.get('vary'), 'Accept, Accept-Language');
  const page = await get(c, `${PAGE}?noredirect`, { accept: BROWSER_ACCEPT });
  t.equal(page.status, 200, '?noredirect shows the page');
  t.equal((await get(c, PAGE)).status, 200, 'machine clients still get JSON');
  const noUrl = await get(c, '/88.100.7/PART-0001', { accept: BROWSER_ACCEPT });
  t.equal(noUrl.status, 200, 'a record without an http(s) URL shows its page');
});

t.test('per-prefix redirect: on, off, inherited; a change applies at once, cached answers and other connections included', async (t) => {
  const c = await seeded(t);
  const browser = { accept: BROWSER_ACCEPT };
  const page = await get(c, PAGE, browser);
  t.equal(page.status, 200, 'no prefix sets it: the node (face.redirect false) shows the page');
  // The page's read was the key's first miss, which admission does not store; this one does.
  t.equal((await c.call('GET', `/api/handles/${ID}`)).headers.get('cache-status'), 'idnode; fwd=uri-miss; stored');
  t.equal((await c.call('GET', `/api/handles/${ID}`)).headers.get('cache-status'), 'idnode; hit', 'the answer is cached');

  const on = await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { redirect: true } });
  t.equal(on.status, 200, on.text);
  t.equal(on.json.redirect, true);
  t.equal((await c.call('GET', '/api/prefixes/88.100.7', { token: ADMIN })).json.redirect, true);
  const r = await get(c, PAGE, browser);
  t.equal(r.status, 302, 'on: the cached answer follows the change at once');
  t.equal(r.headers.get('location'), 'https://acme.example/p/42');
  t.equal((await get(c, `${PAGE}?noredirect`, browser)).status, 200, '?noredirect still shows the page');
  t.equal((await get(c, PAGE)).status, 200, 'machine clients still get JSON');

  const url = (u: string) => [{ index: 1, type: 'URL', data: u }];
  t.equal((await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.7.5', owner: { name: 'Five' } } })).status, 201);
  const off = await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.7.6', owner: { name: 'Six' }, redirect: false } });
  t.equal(off.status, 201, off.text);
  t.equal(off.json.redirect, false);
  await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.7.6.1', owner: { name: 'Six-one' } } });
  for (const id of ['88.100.7.5/E', '88.100.7.6/E', '88.100.7.6.1/E'])
    t.equal((await c.call('PUT', `/api/handles/${id}`, { token: ADMIN, body: url(`https://x.example/${id}`) })).status, 200);
  t.equal((await get(c, '/88.100.7.5/E', browser)).status, 302, 'inherited from the parent prefix');
  t.equal((await get(c, '/88.100.7.6/E', browser)).status, 200, 'off: the prefix overrides its parent');
  t.equal((await get(c, '/88.100.7.6.1/E', browser)).status, 200, 'the nearest ancestor that sets it wins');
  const unset = await c.call('PATCH', '/api/prefixes/88.100.7.6', { token: ADMIN, body: { redirect: null } });
  t.equal(unset.status, 200);
  t.equal(unset.json.redirect, undefined, 'null unsets it');
  t.equal((await get(c, '/88.100.7.6.1/E', browser)).status, 302, 'unset: inherited from 88.100.7 again');

  // Another connection (the CLI, another worker) changes it: the change feed carries it here.
  const other = await openRegistry(c.config);
  t.teardown(async () => {
    other.changes.stop();
    await other.store.close();
  });
  await other.prefixes.patch('88.100.7', { redirect: false }, 'test');
  await c.node.changes.caughtUp(await other.store.changesHead());
  t.equal((await get(c, PAGE, browser)).status, 200, 'off, set through another connection');
  t.equal((await get(c, '/88.100.7.5/E', browser)).status, 200, 'and inherited below it');
  t.same(await c.node.store.verifyAudit(), { ok: true, checked: (await c.node.store.auditHead()).seq }, 'the audit chain covers the settings');

  const bad = await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { redirect: 'yes' } });
  t.equal(bad.status, 400);
  t.match(bad.json, { code: 'IDN_INVALID_VALUE', message: /redirect must be true or false/ });
  const badCreate = await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.7.7', owner: { name: 'S' }, redirect: null } });
  t.equal(badCreate.status, 400, 'a new prefix sets true or false, or leaves it out');

  const proxy = await seeded(t, { face: { redirect: true } });
  await proxy.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { redirect: false } });
  t.equal((await get(proxy, PAGE, browser)).status, 200, 'a prefix turns the node-wide proxy off for its identifiers');
});

t.test('a deleted identifier: a 410 page with the deletion date (zh, en); the JSON stays the Handle not-found', async (t) => {
  const clock = testClock(Date.parse('2026-11-30T05:03:00Z'));
  const c = await seeded(t, {}, { now: clock.now });
  const regId = (await c.call('GET', '/api/tokens', { token: ADMIN })).json.tokens.find((x: any) => x.role === 'registrar').id as string;
  clock.advance(3_600_000);
  const gone = '/88.100.7/PART-0001';
  t.equal((await c.call('DELETE', `/api/handles${gone}`, { token: c.reg })).status, 200);

  const zh = await get(c, gone, { accept: BROWSER_ACCEPT });
  t.equal(zh.status, 410);
  t.match(zh.headers.get('content-type'), /^text\/html/);
  t.match(zh.headers.get('cache-control'), /^max-age=\d+$/);
  t.match(zh.text, /标识已删除/);
  t.match(zh.text, /<time id="deleted-at" datetime="2026-11-30T06:03:00Z">2026年11月30日 06:03 UTC<\/time>/);
  t.match(zh.text, /Acme Engines 艾克姆/, 'the owner of the prefix');
  t.notMatch(zh.text, new RegExp(regId), 'who deleted it is not shown to anonymous readers');
  const en = await get(c, `${gone}?lang=en`, { accept: BROWSER_ACCEPT });
  t.equal(en.status, 410);
  t.match(en.text, /Identifier deleted/);
  t.match(en.text, /30 November 2026, 06:03 UTC/);

  const apiJson = await get(c, `/api/handles${gone}`);
  t.equal(apiJson.status, 404);
  t.match(JSON.parse(apiJson.text), { responseCode: 100, code: 'IDN_NOT_FOUND' });
  for (const round of ['first', 'second']) {
    const short = await get(c, gone);
    t.equal(short.status, 404, `the short URL's JSON, ${round}`);
    t.equal(short.text, apiJson.text, 'the same bytes as /api/handles');
  }
  t.equal((await get(c, '/88.100.7/NEVER', { accept: BROWSER_ACCEPT })).status, 404, 'never registered: the 404 page');

  const auditor = (await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'auditor' } })).json as { id: string };
  const sessions = createSessions({ secret: sessionSecret('', c.config.db), ttlSeconds: 600, secure: false, tokens: c.node.tokens });
  const cookie = sessions.issue(auditor.id, Date.now()).split(';')[0]!;
  const audited = await get(c, gone, { accept: BROWSER_ACCEPT, cookie });
  t.equal(audited.status, 410);
  t.match(audited.text, new RegExp(`<dd id="deleted-by">${regId}</dd>`), 'a logged-in auditor sees who deleted it');
  t.equal(audited.headers.get('cache-control'), 'private, no-store');

  const back = await c.call('PUT', `/api/handles${gone}?reuseDeleted=true`, { token: ADMIN, body: [{ index: 2, type: 'name', data: 'Crankshaft' }] });
  t.equal(back.status, 200);
  t.equal((await get(c, gone, { accept: BROWSER_ACCEPT })).status, 200, 're-registered: the page is back');
});

/** GET with a raw path (http.request sends it as written: no normalising, no encoding). */
function rawGet(base: string, path: string, headers: Record<string, string>): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}/`, { path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('a bad percent-escape: browsers get an HTML 400 page echoing the raw path, machines the JSON', async (t) => {
  const c = await seeded(t);
  const page = await rawGet(c.url, '/88.100.7/%ZZ', { accept: BROWSER_ACCEPT });
  t.equal(page.status, 400);
  t.equal(page.type, 'text/html; charset=utf-8');
  t.match(page.text, /<html lang="zh-CN">/);
  t.match(page.text, /链接格式错误/);
  t.match(page.text, /<p class="id" id="identifier">88\.100\.7\/%ZZ<\/p>/, 'the raw path, not decoded');
  t.match(page.text, /<form class="search"/, 'with the search box');
  t.match(page.text, /name="id"\s+value="88\.100\.7\/%ZZ"/, 'holding the raw path');
  t.notMatch(page.text, /<script|style=/);
  const en = await rawGet(c.url, '/88.100.7/%ZZ?lang=en', { accept: BROWSER_ACCEPT });
  t.match(en.text, /Malformed link/);
  t.match(en.text, /invalid percent-escape/);
  t.equal((await rawGet(c.url, '/88.100.7/%ZZ?format=json', { accept: BROWSER_ACCEPT })).type, 'application/json; charset=utf-8', 'format=json wins');

  for (const accept of [undefined, '*/*', 'application/json', 'text/html;q=0.5, application/json']) {
    const r = await rawGet(c.url, '/88.100.7/%ZZ', accept === undefined ? {} : { accept });
    t.equal(r.status, 400, `${accept ?? 'no Accept'}`);
    t.match(JSON.parse(r.text), { responseCode: 102, code: 'IDN_INVALID_IDENTIFIER' }, `${accept ?? 'no Accept'}: JSON`);
  }
  const api = await rawGet(c.url, '/api/handles/88.100.7/%ZZ', { accept: BROWSER_ACCEPT });
  t.match(JSON.parse(api.text), { code: 'IDN_INVALID_IDENTIFIER' }, '/api/handles is always JSON');

  // No space: a request line cannot hold one raw.
  const attack = '/88.100.7/<script>alert(1)</script>"\'<img/src=x/onerror=alert(2)>%ZZ';
  const xss = await rawGet(c.url, attack, { accept: BROWSER_ACCEPT });
  t.equal(xss.status, 400);
  t.match(xss.type, /^text\/html/);
  t.notMatch(xss.text, /<script>|<img/, 'nothing in the path became markup');
  t.match(xss.text, /&lt;script&gt;alert\(1\)&lt;\/script&gt;&quot;&#39;&lt;img\/src=x\/onerror=alert\(2\)&gt;%ZZ/, 'echoed escaped, as sent');
});

/** A fake upstream that answers every request with `answer` (or never, when it is undefined). */
async function fakeUpstream(t: Test, answer: string | undefined): Promise<string> {
  const server: Server = createServer((_req, res) => {
    if (answer !== undefined) res.writeHead(200, { 'content-type': 'application/json' }).end(answer);
  });
  return listenLocal(t, server);
}

t.test("other nodes' identifiers render from the forwarded answer; upstream failures get 502/504 pages", async (t) => {
  const top = await startNode(t, { homed: ['88.200'] });
  await top.call('PUT', '/api/handles/88.200/STEEL-1', { token: ADMIN, body: [{ index: 2, type: 'material', data: 'Q235 steel' }] });
  const a = await startNode(t, { homed: ['88.100'], upstream: { url: top.url } });
  const r = await get(a, '/88.200/STEEL-1', { accept: BROWSER_ACCEPT });
  t.equal(r.status, 200);
  t.match(r.text, /Q235 steel/);
  t.match(r.text, /由其他节点解析/, 'marked as resolved by another node');
  const json = await get(a, '/88.200/STEEL-1');
  t.equal(json.text, (await get(a, '/api/handles/88.200/STEEL-1')).text, 'machine clients get the forwarded JSON');

  const garbage = await startNode(t, { homed: ['88.100'], upstream: { url: await fakeUpstream(t, 'not json') } });
  const bad = await get(garbage, '/88.300/X-1', { accept: BROWSER_ACCEPT, 'accept-language': 'en' });
  t.equal(bad.status, 502);
  t.match(bad.text, /The upstream node did not answer/);
  const hung = await startNode(t, { homed: ['88.100'], upstream: { url: await fakeUpstream(t, undefined), timeoutMs: 200 } });
  const slow = await get(hung, '/88.300/X-1', { accept: BROWSER_ACCEPT, 'accept-language': 'en' });
  t.equal(slow.status, 504);
  t.match(slow.text, /timed out/);
});

// ---- In a real browser ----

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = new URL('../.tap/screenshots/', import.meta.url);

// CI must not pass without the browser tests (they fail there); elsewhere they are skipped.
const BROWSER_TESTS = existsSync(CHROMIUM) || process.env.CI ? {} : { skip: `no browser at ${CHROMIUM} (apt-get install chromium fonts-noto-cjk)` };

async function launch(t: Test): Promise<Browser | undefined> {
  if (!existsSync(CHROMIUM)) {
    t.fail(`no browser at ${CHROMIUM}: .ci/run installs chromium; set CHROMIUM_PATH otherwise`);
    return undefined;
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--disable-dev-shm-usage', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  t.teardown(() => browser.close());
  mkdirSync(SHOTS, { recursive: true });
  return browser;
}

/** A page that records console errors, page errors and every request to another origin. */
async function watchedPage(browser: Browser, origin: string, opts: Parameters<Browser['newPage']>[0]) {
  const page = await browser.newPage(opts);
  const problems: string[] = [];
  const external: string[] = [];
  const expectedErrors = new Set<string>();
  page.on('console', (m) => {
    // Chromium logs a document answered 403/404/410 as an error: expected for the pages a test names, nothing else.
    if (m.type() === 'error' && !(/status of 4(0[34]|10)/.test(m.text()) && expectedErrors.has(m.location().url)))
      problems.push(`${m.text()} @ ${m.location().url}`);
  });
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  page.on('request', (r) => {
    if (!r.url().startsWith(origin)) external.push(r.url());
  });
  return { page, problems, external, expectedErrors };
}

async function noHorizontalScroll(page: Page): Promise<boolean> {
  return (await page.evaluate('document.documentElement.scrollWidth <= document.documentElement.clientWidth')) === true;
}

/** Decodes the page's QR code from the pixels of its screenshot. */
async function decodeQr(page: Page): Promise<string | undefined> {
  const png = PNG.sync.read(await page.locator('main svg.qr').first().screenshot());
  return jsQR(new Uint8ClampedArray(png.data), png.width, png.height)?.data;
}

t.test('in a browser at phone size (zh-CN): what a person reads, the button, the QR code', BROWSER_TESTS, async (t) => {
  const browser = await launch(t);
  if (browser === undefined) return;
  const c = await seeded(t);
  // A template names item 2001: its label is the template's item name, not the raw type.
  await c.call('PUT', '/api/templates/88.100.7/1.0', {
    token: c.reg,
    body: { name: 'Engines', items: [{ name: '出厂检验员', idIndex: 2001, idType: 'inspector', dataType: 'string' }] },
  });
  const tpl = await c.call('PUT', '/api/handles/88.100.7/ENGINE-T', {
    token: c.reg,
    body: [
      { index: 1001, type: 'TEMPLATE', data: '1.0' },
      { index: 2001, type: 'inspector', data: 'Wang Li' },
    ],
  });
  t.equal(tpl.status, 200, tpl.text);

  const { page, problems, external } = await watchedPage(browser, c.url, {
    viewport: { width: 390, height: 844 },
    locale: 'zh-CN',
    isMobile: true,
    hasTouch: true,
  });
  const res = await page.goto(c.url + PAGE, { waitUntil: 'load' });
  t.equal(res?.status(), 200);
  const headers = res!.headers();
  t.match(headers['content-type'], /^text\/html/);
  t.equal(headers.vary, 'Accept, Accept-Language, Cookie');
  t.equal(headers['x-content-type-options'], 'nosniff');
  t.equal(await page.locator('html').getAttribute('lang'), 'zh-CN');
  t.equal(await page.locator('#identifier').innerText(), ID);
  t.equal(await page.locator('#owner').innerText(), 'Acme Engines 艾克姆');
  const values = await page.locator('#values').innerText();
  for (const want of ['名称', '汽油发动机 HX-2.0T', '批次', 'B-7', '电子邮件', 'quality@acme.example', 'vendorCode', 'VC-9'])
    t.match(values, want, `the page reads ${want}`);
  t.notMatch(await page.content(), /SECRET-COST/, 'no non-public value for an anonymous reader');
  t.equal(await page.locator('#open').getAttribute('href'), 'https://acme.example/p/42', "the button opens the record's URL");
  t.ok(await page.locator('#open').isVisible());
  t.equal(await page.locator('#json').getAttribute('href'), `/api/handles/${ID}`);
  t.equal(await decodeQr(page), c.url + PAGE, 'the QR code decodes to the canonical URL');
  t.ok(await noHorizontalScroll(page), 'no horizontal scroll at 390 px');
  await page.screenshot({ path: new URL('phone-record.png', SHOTS).pathname, fullPage: true });

  await page.locator('a.ref', { hasText: '88.100.7/PART-0001' }).click();
  await page.waitForURL(`${c.url}/88.100.7/PART-0001`);
  t.match(await page.locator('#values').innerText(), 'Crankshaft', 'a value that is an identifier links to its page');

  await page.goto(`${c.url}/88.100.7/ENGINE-T`, { waitUntil: 'load' });
  t.match(await page.locator('#values').innerText(), '出厂检验员', "labelled by the template's item name");

  await page.goto(c.url + PAGE, { waitUntil: 'load' });
  await page.locator('a.lang').click();
  await page.waitForURL(/lang=en/);
  t.equal(await page.locator('html').getAttribute('lang'), 'en');
  const english = await page.locator('#values').innerText();
  t.match(english, 'Name');
  t.match(english, 'Batch');
  t.ok(await noHorizontalScroll(page), 'no horizontal scroll in English');

  await page.goto(`${c.url}/`, { waitUntil: 'load' });
  await page.locator('input[name=id]').fill(ID);
  await page.locator('form.search button').click();
  await page.waitForURL(`${c.url}${PAGE}?lang=zh`);
  t.equal(await page.locator('#identifier').innerText(), ID, 'the search box leads to the page');

  t.same(problems, [], 'no console errors (CSP, favicon, scripts)');
  t.same(external, [], 'no request leaves the node');
});

t.test('in a browser: an XSS attempt shows as text; desktop layout; labels', BROWSER_TESTS, async (t) => {
  const browser = await launch(t);
  if (browser === undefined) return;
  const c = await seeded(t);
  const { page, problems, external, expectedErrors } = await watchedPage(browser, c.url, { viewport: { width: 1280, height: 800 }, locale: 'en-US' });
  const attack = '88.100.7/<img src=x onerror=alert(1)>"\'';
  const attackUrl = `${c.url}/88.100.7/${encodeURIComponent(attack.slice(9))}`;
  expectedErrors.add(attackUrl);
  const res = await page.goto(attackUrl, { waitUntil: 'load' });
  t.equal(res?.status(), 404);
  t.equal(await page.locator('#identifier').innerText(), attack, 'the identifier reads as the text that was sent');
  t.equal(await page.locator('main img').count(), 0, 'no element was injected');
  t.equal(await page.locator('#owner').innerText(), 'Acme Engines 艾克姆', 'the 404 names the prefix owner');
  t.equal(await page.locator('form.search input[name=id]').inputValue(), attack, 'and offers search');
  await page.screenshot({ path: new URL('desktop-404.png', SHOTS).pathname });

  const desktop = await page.goto(c.url + PAGE, { waitUntil: 'load' });
  t.equal(desktop?.status(), 200);
  t.equal(await page.locator('html').getAttribute('lang'), 'en', 'Accept-Language en-US gives English');
  t.equal(await decodeQr(page), c.url + PAGE);
  t.ok(await noHorizontalScroll(page));
  await page.screenshot({ path: new URL('desktop-record.png', SHOTS).pathname, fullPage: true });

  const labels = await page.goto(`${c.url}/labels?ids=${encodeURIComponent(`${ID},88.100.7/PART-0001`)}`, { waitUntil: 'load' });
  t.equal(labels?.status(), 200);
  t.same(await page.locator('figure.label p').allInnerTexts(), [ID, '88.100.7/PART-0001'], 'the identifier under each code');
  const png = PNG.sync.read(await page.locator('figure.label svg.qr').nth(1).screenshot());
  t.equal(jsQR(new Uint8ClampedArray(png.data), png.width, png.height)?.data, `${c.url}/88.100.7/PART-0001`, 'a label decodes to its URL');
  await page.emulateMedia({ media: 'print' });
  t.equal(await page.locator('header').isVisible(), false, 'print hides the page chrome');
  await page.screenshot({ path: new URL('labels-print.png', SHOTS).pathname, fullPage: true });

  t.same(problems, [], 'no console errors');
  t.same(external, [], 'no request leaves the node');
});

t.test('in a browser at phone size (zh-CN): the page of a deleted identifier', BROWSER_TESTS, async (t) => {
  const browser = await launch(t);
  if (browser === undefined) return;
  const clock = testClock(Date.parse('2026-11-30T05:03:00Z'));
  const c = await seeded(t, {}, { now: clock.now });
  t.equal((await c.call('DELETE', `/api/handles/${ID}`, { token: c.reg })).status, 200);
  const { page, problems, external, expectedErrors } = await watchedPage(browser, c.url, {
    viewport: { width: 390, height: 844 },
    locale: 'zh-CN',
    isMobile: true,
    hasTouch: true,
  });
  expectedErrors.add(c.url + PAGE);
  const res = await page.goto(c.url + PAGE, { waitUntil: 'load' });
  t.equal(res?.status(), 410);
  t.equal(await page.locator('html').getAttribute('lang'), 'zh-CN');
  t.equal(await page.locator('h1').innerText(), '标识已删除');
  t.equal(await page.locator('#identifier').innerText(), ID);
  const when = page.locator('#deleted-at');
  t.equal(await when.innerText(), '2026年11月30日 05:03 UTC', 'the deletion date reads as a date');
  t.ok(await when.isVisible());
  const box = await when.boundingBox();
  t.ok(box !== null && box.x >= 0 && box.x + box.width <= 390, 'the date lies within the phone screen');
  t.equal(await page.locator('#deleted-by').count(), 0, 'who deleted it is for auditors only');
  t.ok(await page.locator('form.search input[name=id]').isVisible(), 'a search box to go on');
  t.ok(await noHorizontalScroll(page), 'no horizontal scroll at 390 px');
  await page.screenshot({ path: new URL('phone-tombstone.png', SHOTS).pathname, fullPage: true });
  t.same(problems, [], 'no console errors');
  t.same(external, [], 'no request leaves the node');
});

t.test('page sessions: signed, expiring, revocable; the API ignores the cookie', async (t) => {
  const c = await seeded(t);
  const auditor = (await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'auditor' } })).json as { id: string; secret: string };
  const registrarTok = (await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'registrar', prefixes: ['88.100.7'] } })).json as { id: string };
  const secret = sessionSecret('', c.config.db);
  t.same(sessionSecret('', c.config.db), secret, 'the generated secret is kept beside the database');
  const sessions = createSessions({ secret, ttlSeconds: 600, secure: false, tokens: c.node.tokens });
  const now = Date.parse('2026-06-01T00:00:00Z');
  const cookie = sessions.issue(auditor.id, now);
  t.match(cookie, /^idn_face=[^;]+; Max-Age=600; Path=\/; HttpOnly; SameSite=Strict$/);
  const value = cookie.split(';')[0]!;
  t.match(await sessions.read(value, now + 599_000), { id: auditor.id, role: 'auditor' });
  t.equal(await sessions.read(value, now + 600_000), undefined, 'expired');
  t.equal(await sessions.read(`${value.slice(0, -2)}xx`, now), undefined, 'a changed signature');
  const forged = `idn_face=${Buffer.from(JSON.stringify({ t: auditor.id, e: 9e9 })).toString('base64url')}.${value.split('.')[1]}`;
  t.equal(await sessions.read(forged, now), undefined, 'a changed payload');
  t.equal(await sessions.read(sessions.issue(registrarTok.id, now).split(';')[0], now), undefined, 'a registrar is no page user');
  t.equal(
    await createSessions({ secret: Buffer.from('other'), ttlSeconds: 600, secure: false, tokens: c.node.tokens }).read(value, now),
    undefined,
    'another key',
  );

  // Through HTTP: log in with the form, see the non-public value; the API does not.
  const bad = await fetch(`${c.url}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'token=wrong&next=/',
    redirect: 'manual',
  });
  t.equal(bad.status, 403);
  t.equal(bad.headers.get('set-cookie'), null);
  const login = await fetch(`${c.url}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `token=${encodeURIComponent(auditor.secret)}&next=${encodeURIComponent(PAGE)}`,
    redirect: 'manual',
  });
  t.equal(login.status, 303);
  t.equal(login.headers.get('location'), PAGE);
  const session = login.headers.get('set-cookie')!.split(';')[0]!;
  t.match(login.headers.get('set-cookie'), /HttpOnly; SameSite=Strict/);
  const offsite = await fetch(`${c.url}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
    body: `token=${encodeURIComponent(auditor.secret)}&next=//evil.example`,
    redirect: 'manual',
  });
  t.equal(offsite.status, 403, 'a login posted from another site is refused');
  const page = await get(c, PAGE, { accept: BROWSER_ACCEPT, cookie: session });
  t.match(page.text, /SECRET-COST-12\.5/, 'logged in, the page shows the non-public value');
  t.match(page.text, /class="mark"/, 'marked as non-public');
  t.equal(page.headers.get('cache-control'), 'private, no-store');
  t.equal(page.headers.get('etag'), null);
  const api = await get(c, `/api/handles/${ID}`, { cookie: session });
  t.notMatch(api.text, /SECRET-COST/, '/api routes ignore the cookie');
  const json = await get(c, PAGE, { cookie: session });
  t.notMatch(json.text, /SECRET-COST/, 'the JSON of the short URL ignores it too');
  t.equal((await c.call('DELETE', `/api/tokens/${auditor.id}`, { token: ADMIN })).status, 200);
  t.notMatch((await get(c, PAGE, { accept: BROWSER_ACCEPT, cookie: session })).text, /SECRET-COST/, 'a revoked token ends the session');
  const out = await fetch(`${c.url}/logout`, { method: 'POST', redirect: 'manual' });
  t.equal(out.status, 303);
  t.match(out.headers.get('set-cookie'), /^idn_face=; Max-Age=0/);
});

t.test('in a browser: an auditor logs in, sees non-public values, history and lineage, follows a box', BROWSER_TESTS, async (t) => {
  const browser = await launch(t);
  if (browser === undefined) return;
  const c = await seeded(t);
  const auditor = (await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'auditor' } })).json as { id: string; secret: string };
  const ev1 = await c.call('POST', '/api/events', {
    token: c.reg,
    body: { type: 'aggregation', action: 'ADD', parent: ID, children: ['88.100.7/PART-0001'], eventTime: '2026-03-01T08:00:00+08:00' },
  });
  t.equal(ev1.status, 201, ev1.text);
  const ev2 = await c.call('POST', '/api/events', {
    token: c.reg,
    body: { type: 'transformation', inputs: ['88.200.15/STEEL-LOT-1'], outputs: ['88.100.7/PART-0001'], eventTime: '2026-02-01T08:00:00Z' },
  });
  t.equal(ev2.status, 201, ev2.text);

  const { page, problems, external, expectedErrors } = await watchedPage(browser, c.url, {
    viewport: { width: 390, height: 844 },
    locale: 'zh-CN',
    isMobile: true,
    hasTouch: true,
  });
  expectedErrors.add(`${c.url}/login`);
  await page.goto(c.url + PAGE, { waitUntil: 'load' });
  t.notMatch(await page.content(), /SECRET-COST/, 'anonymous first');
  await page.locator('a.login').click();
  await page.waitForURL(/\/login/);
  await page.locator('#token').fill('not-a-token');
  await page.locator('form.login button').click();
  await page.waitForSelector('#login-failed');
  t.ok(await page.locator('#login-failed').isVisible(), 'a wrong token is refused with a message');
  await page.locator('#token').fill(auditor.secret);
  await page.locator('form.login button').click();
  await page.waitForURL(`${c.url}${PAGE}?lang=zh`);
  t.match(await page.locator('#who').innerText(), auditor.id);
  const values = await page.locator('#values').innerText();
  t.match(values, 'SECRET-COST-12.5', 'the auditor sees the non-public value');
  t.match(values, '非公开', 'marked non-public');
  t.match(await page.locator('#history').innerText(), 'record.create', 'the history lists the write');
  t.equal(await page.locator('svg.lineage a.node').count(), 3, 'the engine, its part and the foreign steel lot');
  t.match(await page.locator('svg.lineage').innerHTML(), /stroke-dasharray/, 'the foreign lot is marked');
  t.ok(await noHorizontalScroll(page), 'the graph scrolls inside its box, not the page');
  await page.screenshot({ path: new URL('phone-auditor.png', SHOTS).pathname, fullPage: true });
  await page.locator('svg.lineage a.node[data-handle="88.100.7/PART-0001"]').click();
  await page.waitForURL(`${c.url}/88.100.7/PART-0001`);
  t.equal(await page.locator('#identifier').innerText(), '88.100.7/PART-0001', 'a lineage box opens its page');
  t.equal(await page.locator('svg.lineage a.node').count(), 3, "the part's own graph: engine above, lot below");

  await page.locator('form.logout button').click();
  await page.waitForURL(`${c.url}/`);
  await page.goto(c.url + PAGE, { waitUntil: 'load' });
  t.notMatch(await page.content(), /SECRET-COST/, 'logged out, the value is hidden again');
  t.equal(await page.locator('svg.lineage').count(), 0);
  t.same(problems, [], 'no console errors');
  t.same(external, [], 'no request leaves the node');
});

t.test('lineage graph: columns by depth, wide columns folded, foreign marked, boxes link', async (t) => {
  const root = '88.100.4/VIN-1';
  const parts = Array.from({ length: 12 }, (_, i) => `88.100.2/P-${String(i).padStart(2, '0')}`);
  const down = {
    root,
    nodes: [...parts.map((handle) => ({ handle, depth: 1, location: 'local' as const })), { handle: '88.200/LOT<1>', depth: 2, location: 'foreign' as const }],
    edges: [
      ...parts.map((to, i) => ({ from: root, to, type: 'aggregation', since: '2026-01-01T00:00:00.000Z', eventId: i + 1 })),
      { from: parts[0]!, to: '88.200/LOT<1>', type: 'transformation', since: '2026-01-01T00:00:00.000Z', eventId: 99 },
    ],
    truncated: false,
  };
  const up = {
    root,
    nodes: [{ handle: '88.100.9/SHIP-1', depth: 1, location: 'local' as const }],
    edges: [{ from: '88.100.9/SHIP-1', to: root, type: 'aggregation', since: '2026-01-01T00:00:00.000Z', eventId: 100 }],
    truncated: false,
  };
  const svg = lineageSvg(root, up, down, 'en')!.__html;
  const links = [...svg.matchAll(/<a href="([^"]+)" class="node" data-handle="([^"]+)"/g)];
  t.equal(links.length, 1 + 1 + (FOLD_AT - 1) + 1, 'root, one ancestor, the shown parts, the lot');
  t.match(svg, `and ${12 - (FOLD_AT - 1)} more`, 'the rest of the wide column is folded');
  t.ok(
    links.some((m) => m[1] === '/88.200/LOT%3C1%3E'),
    'boxes link to their pages (encoded)',
  );
  t.notMatch(svg, /LOT<1>/, 'identifier text is escaped inside the SVG');
  t.match(svg, /stroke-dasharray/, 'the foreign lot is dashed');
  const xs = new Map([...svg.matchAll(/data-handle="([^"]+)"[\s\S]*?<rect\s+x="(\d+)"/g)].map((m) => [m[1]!, Number(m[2])]));
  const x = (h: string) => xs.get(h) ?? NaN;
  t.ok(x('88.100.9/SHIP-1') < x(root), 'the ancestor left of the root');
  t.ok(x(root) < x(parts[0]!) && x(parts[0]!) < x('88.200/LOT&lt;1&gt;'), 'descendants right, by depth');
  t.equal(lineageSvg(root, { ...up, nodes: [], edges: [] }, { ...down, nodes: [], edges: [] }, 'en'), undefined, 'no lineage, no graph');
});
