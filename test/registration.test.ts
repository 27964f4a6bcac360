import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ADMIN, registrar, runCli, sampleValues, startNode, storeEnv, tempDir } from './helpers.js';

t.test('PUT create/replace, overwrite=false, case variants keep the first spelling and echo the sent one', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  const created = await c.call('PUT', '/api/handles/88.100.7/ABC?overwrite=false', { token: reg, body: { values: sampleValues } });
  t.equal(created.status, 201);
  t.same(created.json, { responseCode: 1, handle: '88.100.7/ABC' });
  const dup = await c.call('PUT', '/api/handles/88.100.7/ABC?overwrite=false', { token: reg, body: sampleValues });
  t.equal(dup.status, 409);
  t.match(dup.json, { responseCode: 101, code: 'IDN_HANDLE_EXISTS', handle: '88.100.7/ABC', message: /already exists; send overwrite=true/ });
  const variant = await c.call('PUT', '/api/handles/88.100.7/abc?overwrite=false', { token: reg, body: sampleValues });
  t.equal(variant.status, 409);
  t.match(variant.json, { responseCode: 101, handle: '88.100.7/ABC', message: /conflicts with the existing 88.100.7\/ABC/ });
  const replaced = await c.call('PUT', '/api/handles/88.100.7/aBc', { token: reg, body: [{ index: 9, type: 'x', data: 'y' }] });
  t.equal(replaced.status, 200);
  t.equal(replaced.json.handle, '88.100.7/aBc', 'the answer echoes the spelling sent, as Handle.Net does');
  const listed = await c.call('GET', '/api/handles?prefix=88.100.7', { token: reg });
  t.same(listed.json.handles, ['88.100.7/ABC'], 'overwrite through a case variant keeps the stored spelling');
  const got = await c.call('GET', '/api/handles/88.100.7/ABC');
  t.same(
    got.json.values.map((v: any) => v.index),
    [9],
    'replaced entirely, and the cache was invalidated in the same request',
  );
  const createdDefault = await c.call('PUT', '/api/handles/88.100.7/NEW', { token: reg, body: sampleValues });
  t.equal(createdDefault.status, 200, 'overwrite=true create answers 200');
});

t.test('index= adds or replaces only those values; DELETE ?index= removes values', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  await c.call('PUT', '/api/handles/88.100.7/V', { token: reg, body: sampleValues });
  const before = (await c.call('GET', '/api/handles/88.100.7/V')).json.values;
  const add = await c.call('PUT', '/api/handles/88.100.7/V?index=2&index=10', {
    token: reg,
    body: [
      { index: 2, type: 'name', data: 'renamed' },
      { index: 10, type: 'note', data: 'added' },
    ],
  });
  t.equal(add.status, 200);
  const after = (await c.call('GET', '/api/handles/88.100.7/V')).json.values;
  t.same(
    after.map((v: any) => [v.index, v.data.value]),
    [
      [1, 'https://example.com/p/1'],
      [2, 'renamed'],
      [3, 'B-0001'],
      [10, 'added'],
    ],
  );
  t.equal(after[0].timestamp, before[0].timestamp, 'untouched values keep their timestamp');
  const various = await c.call('PUT', '/api/handles/88.100.7/V?index=various', { token: reg, body: [{ index: 11, type: 'n', data: 'v' }] });
  t.equal(various.status, 200);
  t.equal((await c.call('GET', '/api/handles/88.100.7/V')).json.values.length, 5);
  const notListed = await c.call('PUT', '/api/handles/88.100.7/V?index=2', { token: reg, body: [{ index: 3, type: 'n', data: 'v' }] });
  t.match(notListed.json, { responseCode: 202, message: /index 3 is in the body but not in index=/ });
  const notInBody = await c.call('PUT', '/api/handles/88.100.7/V?index=2,3', { token: reg, body: [{ index: 2, type: 'n', data: 'v' }] });
  t.match(notInBody.json, { responseCode: 202, message: /index=3 names no value/ });
  const badIndex = await c.call('PUT', '/api/handles/88.100.7/V?index=zero', { token: reg, body: sampleValues });
  t.match(badIndex.json, { responseCode: 4, code: 'IDN_BAD_REQUEST', message: /index= must be value indexes/ });
  const missingRecord = await c.call('PUT', '/api/handles/88.100.7/NONE?index=1', { token: reg, body: [{ index: 1, type: 'n', data: 'v' }] });
  t.equal(missingRecord.status, 404);

  const del = await c.call('DELETE', '/api/handles/88.100.7/V?index=10,11', { token: reg });
  t.equal(del.status, 200);
  t.same(
    (await c.call('GET', '/api/handles/88.100.7/V')).json.values.map((v: any) => v.index),
    [1, 2, 3],
  );
  const delMissing = await c.call('DELETE', '/api/handles/88.100.7/V?index=42', { token: reg });
  t.equal(delMissing.status, 400, 'as the reference answers');
  t.match(delMissing.json, { responseCode: 200, code: 'IDN_VALUE_NOT_FOUND', message: /no value at index 42/ });
  const delAll = await c.call('DELETE', '/api/handles/88.100.7/V?index=1&index=2&index=3', { token: reg });
  t.match(delAll.json, { responseCode: 202, message: /remove every value/ });
  t.match((await c.call('DELETE', '/api/handles/88.100.7/V?index=various', { token: reg })).json, { responseCode: 4 });
});

t.test('DELETE removes the record; unchanged PUT writes nothing; mintNewSuffix', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  await c.call('PUT', '/api/handles/88.100.7/D', { token: reg, body: sampleValues });
  await c.call('GET', '/api/handles/88.100.7/D');
  const auditBefore = (await c.node.store.auditPage(0, 1_000_000)).length;
  await c.call('PUT', '/api/handles/88.100.7/D', { token: reg, body: sampleValues });
  t.equal((await c.node.store.auditPage(0, 1_000_000)).length, auditBefore, 'identical PUT: no new version, no audit entry');
  const del = await c.call('DELETE', '/api/handles/88.100.7/d', { token: reg });
  t.same(del.json, { responseCode: 1, handle: '88.100.7/d' }, 'the spelling sent');
  t.equal((await c.call('GET', '/api/handles/88.100.7/D')).status, 404, 'the cached answer went with the delete');
  t.equal((await c.call('DELETE', '/api/handles/88.100.7/D', { token: reg })).status, 404);

  const minted = await c.call('PUT', '/api/handles/88.100.7/ORDER-?mintNewSuffix=true', { token: reg, body: sampleValues });
  t.equal(minted.status, 201);
  t.match(minted.json.handle, /^88\.100\.7\/ORDER-[0-9a-f-]{36}$/);
  t.equal((await c.call('GET', `/api/handles/${minted.json.handle}`)).status, 200);
  const bare = await c.call('PUT', '/api/handles/88.100.7/?mintNewSuffix=true', { token: reg, body: sampleValues });
  t.match(bare.json.handle, /^88\.100\.7\/[0-9a-f-]{36}$/, 'an empty suffix gets a fresh one');
});

t.test('listing with paging; count only; bounds', async (t) => {
  const c = await startNode(t, { limits: { pageSizeMax: 50 } });
  const reg = await registrar(c);
  for (const s of ['c', 'A', 'b', 'D']) await c.call('PUT', `/api/handles/88.100.7/${s}`, { token: reg, body: sampleValues });
  const all = await c.call('GET', '/api/handles?prefix=88.100.7', { token: reg });
  t.same(all.json, { responseCode: 1, prefix: '88.100.7', totalCount: 4, handles: ['88.100.7/A', '88.100.7/b', '88.100.7/c', '88.100.7/D'] });
  const page = await c.call('GET', '/api/handles?prefix=88.100.7&page=1&pageSize=3', { token: reg });
  t.same(page.json.handles, ['88.100.7/D']);
  t.equal(page.json.totalCount, 4);
  const count = await c.call('GET', '/api/handles?prefix=88.100.7&pageSize=0', { token: ADMIN });
  t.same(count.json, { responseCode: 1, prefix: '88.100.7', totalCount: 4, handles: [] });
  t.match((await c.call('GET', '/api/handles?prefix=88.100.7&pageSize=51', { token: reg })).json, { responseCode: 4, message: /limits.pageSizeMax/ });
  // Round 2 (docs/API.md §5): a negative page asks for every identifier, as the reference does.
  t.same((await c.call('GET', '/api/handles?prefix=88.100.7&page=-1', { token: reg })).json, all.json);
  t.match((await c.call('GET', '/api/handles', { token: reg })).json, { responseCode: 4, code: 'IDN_BAD_REQUEST' });
  t.match((await c.call('GET', '/api/handles?prefix=88..7', { token: reg })).json, { responseCode: 4, message: /prefix=/ });
  t.equal((await c.call('GET', '/api/handles?prefix=88.100.7')).status, 401);
  t.match((await c.call('GET', '/api/handles?prefix=99', { token: ADMIN })).json, { responseCode: 301 });
  const other = await registrar(c, '88.100.8');
  t.equal((await c.call('GET', '/api/handles?prefix=88.100.7', { token: other })).status, 403);
});

t.test('listing with a cursor: next and Link continue by key; page= answers carry one too; bad cursors are 400', async (t) => {
  const c = await startNode(t, { limits: { pageSizeMax: 50 } });
  const reg = await registrar(c);
  const suffixes = ['e', 'A', 'c', 'B', 'd', 'F', 'g'];
  for (const s of suffixes) await c.call('PUT', `/api/handles/88.100.7/${s}`, { token: reg, body: sampleValues });
  await c.call('PUT', '/api/handles/88.100.7.1/z', { token: ADMIN, body: sampleValues });
  const all = ['88.100.7/A', '88.100.7/B', '88.100.7/c', '88.100.7/d', '88.100.7/e', '88.100.7/F', '88.100.7/g'];
  // Follow the Link header from the first page to the end, as a generic HTTP client would.
  const seen: string[] = [];
  let path: string | undefined = '/api/handles?prefix=88.100.7&pageSize=3';
  let pages = 0;
  let last: any;
  while (path !== undefined) {
    const res = await c.call('GET', path, { token: reg });
    t.equal(res.status, 200, path);
    t.equal(res.json.totalCount, 7);
    seen.push(...(res.json.handles as string[]));
    const link = res.headers.get('link');
    t.equal(link === null, res.json.next === undefined, 'a Link header exactly when there is a next cursor');
    path = link === null ? undefined : /^<([^>]+)>; rel="next"$/.exec(link)![1];
    if (path !== undefined) t.equal(new URL(path, c.url).searchParams.get('cursor'), res.json.next, "the Link carries the body's cursor");
    last = res.json;
    pages++;
  }
  t.same(seen, all, 'every identifier once, in order, none from under 88.100.7.1');
  t.equal(pages, 3, 'pages of 3, 3 and 1');
  t.same(last, { responseCode: 1, prefix: '88.100.7', totalCount: 7, handles: ['88.100.7/g'] }, 'the last page has no next');

  // An offset page answers the cursor of the page after it; it continues where page=2 would.
  const second = await c.call('GET', '/api/handles?prefix=88.100.7&page=1&pageSize=2', { token: reg });
  t.same(second.json.handles, ['88.100.7/c', '88.100.7/d']);
  const third = await c.call('GET', `/api/handles?prefix=88.100.7&pageSize=2&cursor=${second.json.next}`, { token: reg });
  t.same(third.json.handles, (await c.call('GET', '/api/handles?prefix=88.100.7&page=2&pageSize=2', { token: reg })).json.handles);
  t.same(third.json.handles, ['88.100.7/e', '88.100.7/F']);
  // A cursor is a position, not a snapshot: an identifier added before it shifts offsets, not the cursor.
  await c.call('PUT', '/api/handles/88.100.7/a0', { token: reg, body: sampleValues });
  t.same(
    (await c.call('GET', `/api/handles?prefix=88.100.7&pageSize=2&cursor=${second.json.next}`, { token: reg })).json.handles,
    ['88.100.7/e', '88.100.7/F'],
    'the cursor continues after 88.100.7/d',
  );
  t.same(
    (await c.call('GET', `/api/handles?prefix=0.NA/88.100.7&cursor=${second.json.next}`, { token: reg })).json.handles,
    ['88.100.7/e', '88.100.7/F', '88.100.7/g'],
    'pageSize defaults to 100 with a cursor',
  );

  const bad: Array<[string, RegExp]> = [
    ['cursor=not*base64', /not a listing cursor of prefix 88\.100\.7; send the "next" value/],
    [`cursor=${Buffer.from('88.100.8/x').toString('base64url')}`, /not a listing cursor of prefix 88\.100\.7/],
    ['cursor=', /not a listing cursor/],
    [`cursor=${second.json.next}x`, /not a listing cursor/],
    [`cursor=${second.json.next}&page=1`, /either page= or cursor=/],
    [`cursor=${second.json.next}&pageSize=0`, /pageSize must be 1 to 50 with cursor= \(or leave it out for 50\)/],
    [`cursor=${second.json.next}&pageSize=-1`, /pageSize must be 1 to 50 with cursor=/],
    [`cursor=${second.json.next}&pageSize=51`, /limits\.pageSizeMax.*cursor=/],
  ];
  for (const [q, message] of bad) {
    const res = await c.call('GET', `/api/handles?prefix=88.100.7&${q}`, { token: reg });
    t.equal(res.status, 400, q);
    t.match(res.json, { responseCode: 4, code: 'IDN_BAD_REQUEST', message }, q);
  }
  t.equal((await c.call('GET', `/api/handles?prefix=88.100.7&cursor=${second.json.next}`)).status, 401, 'a cursor needs the token too');
});

t.test('order of checks: syntax → routing → authentication → scope → body', async (t) => {
  const c = await startNode(t, { limits: { bodyMaxBytes: 2048 } });
  const reg = await registrar(c);
  const other = await registrar(c, '88.100.8');
  const cases: Array<[string, string, { token?: string; body?: unknown; headers?: Record<string, string> }, number, number, string]> = [
    ['PUT', '/api/handles/88..7/x', { body: '{bad' }, 400, 102, 'IDN_INVALID_IDENTIFIER'],
    ['PUT', '/api/handles/88.100.7', { body: sampleValues, token: ADMIN }, 403, 401, 'IDN_FORBIDDEN'],
    ['PUT', '/api/handles/99.1/x', { body: '{bad' }, 400, 301, 'IDN_NOT_RESPONSIBLE'],
    ['PUT', '/api/handles/88.100.7/x', { body: '{bad' }, 401, 402, 'IDN_AUTH_REQUIRED'],
    ['PUT', '/api/handles/88.100.7/x', { body: '{bad', token: 'nope' }, 401, 403, 'IDN_AUTH_FAILED'],
    ['PUT', '/api/handles/88.100.7/x', { body: '{bad', headers: { authorization: 'Digest abc' } }, 401, 403, 'IDN_AUTH_FAILED'],
    ['PUT', '/api/handles/88.100.7/x', { body: '{bad', token: other }, 403, 401, 'IDN_FORBIDDEN'],
    ['PUT', '/api/handles/88.100.7/x', { body: '{bad', token: reg }, 400, 4, 'IDN_BODY_UNPARSABLE'],
    ['PUT', '/api/handles/88.100.7/x', { body: [{ index: 1 }], token: reg }, 400, 202, 'IDN_INVALID_VALUE'],
    ['PUT', '/api/handles/88.100.7/x', { body: 'x'.repeat(3000), token: reg }, 400, 4, 'IDN_BODY_TOO_LARGE'],
    ['PUT', '/api/handles/88.100.7/x', { body: 'a=b', token: reg, headers: { 'content-type': 'text/plain' } }, 400, 4, 'IDN_BAD_REQUEST'],
    ['PUT', '/api/handles/88.100.7/x', { token: reg }, 400, 4, 'IDN_BODY_UNPARSABLE'],
    ['PUT', '/api/handles/88.100.7/x?overwrite=maybe', { body: sampleValues, token: reg }, 400, 4, 'IDN_BAD_REQUEST'],
    ['DELETE', '/api/handles/88.100.7/x', {}, 401, 402, 'IDN_AUTH_REQUIRED'],
    ['DELETE', '/api/handles/88.100.7/x', { token: reg }, 404, 100, 'IDN_NOT_FOUND'],
  ];
  for (const [method, path, opts, http, rc, code] of cases) {
    const r = await c.call(method, path, opts);
    t.equal(r.status, http, `${method} ${path} ${code}`);
    t.match(r.json, { responseCode: rc, code }, `${method} ${path} ${code}`);
    if (code !== 'IDN_INVALID_IDENTIFIER') t.ok(r.json.handle, `${code} body names the identifier`);
  }
  const basicUser = Buffer.from(`300%3A88.100%2FADMIN:${reg}`).toString('base64');
  t.equal((await c.call('PUT', '/api/handles/88.100.7/basic', { body: sampleValues, headers: { authorization: `Basic ${basicUser}` } })).status, 200);
  const actor = (await c.node.store.auditPage(0, 1_000_000)).find((e) => e.target === '88.100.7/basic')?.actor;
  t.match(actor, /^tok_[0-9a-f]+ \(300:88.100\/ADMIN\)$/, 'the Basic user is recorded as the actor label');
  t.equal(
    (await c.call('PUT', '/api/handles/88.100.7/b2', { body: sampleValues, headers: { authorization: `Basic ${Buffer.from('nocolon').toString('base64')}` } }))
      .status,
    401,
  );
});

t.test('registrars write only under active prefixes in scope; admin anywhere under homed', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  t.equal((await c.call('PUT', '/api/handles/88.100.7.1/sub', { token: reg, body: sampleValues })).status, 200, 'sub-prefix of the scope');
  t.equal((await c.call('PUT', '/api/handles/88.100/top', { token: reg, body: sampleValues })).status, 403);
  t.equal((await c.call('PUT', '/api/handles/88.100/top', { token: ADMIN, body: sampleValues })).status, 200);
  const auditor = (await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'auditor' } })).json.secret;
  t.equal((await c.call('PUT', '/api/handles/88.100.7/aud', { token: auditor, body: sampleValues })).status, 403, 'auditors write nothing');
  await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { status: 'suspended' } });
  const suspended = await c.call('PUT', '/api/handles/88.100.7/s', { token: reg, body: sampleValues });
  t.equal(suspended.status, 403);
  t.match(suspended.json, { responseCode: 401, code: 'IDN_PREFIX_NOT_ACTIVE', message: /88.100.7 is suspended/ });
  await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { status: 'pending' } });
  t.match((await c.call('PUT', '/api/handles/88.100.7/s', { token: reg, body: sampleValues })).json, { message: /is pending \(waiting for the upstream/ });
  t.equal((await c.call('GET', '/api/handles/88.100.7/sub')).status, 404, 'reads are unaffected by status');
  await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { status: 'active' } });
  t.equal((await c.call('PUT', '/api/handles/88.100.7/s', { token: reg, body: sampleValues })).status, 200);
  const delegated = await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.9', owner: { name: 'R' }, site: 'http://127.0.0.1:9' } });
  t.equal(delegated.status, 201);
  const w = await c.call('PUT', '/api/handles/88.100.9/x', { token: ADMIN, body: sampleValues });
  t.match(w.json, { responseCode: 301, message: /delegated to http:\/\/127.0.0.1:9/ });
});

t.test('a deleted identifier leaves a tombstone: PUT is refused 409 until an admin re-registers it', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  const id = '88.100.7/GONE-1';
  t.equal((await c.call('PUT', `/api/handles/${id}`, { token: reg, body: sampleValues })).status, 200);
  t.equal((await c.call('DELETE', `/api/handles/${id}`, { token: reg })).status, 200);
  const json = await c.call('GET', `/api/handles/${id}`);
  t.equal(json.status, 404, 'resolution still answers the Handle not-found');
  t.match(json.json, { responseCode: 100, code: 'IDN_NOT_FOUND' });
  t.notMatch(json.text, /deleted/, 'the JSON answer does not reveal the tombstone');

  for (const [path, token, what] of [
    [`/api/handles/${id}`, reg, 'a plain PUT'],
    ['/api/handles/88.100.7/gone-1', reg, 'a case variant'],
    [`/api/handles/${id}?overwrite=false`, reg, 'overwrite=false'],
    [`/api/handles/${id}?index=1`, reg, 'index='],
    [`/api/handles/${id}`, ADMIN, 'an admin without reuseDeleted'],
  ] as const) {
    const refused = await c.call('PUT', path, { token, body: [sampleValues[0]] });
    t.equal(refused.status, 409, what);
    t.match(refused.json, { responseCode: 101, code: 'IDN_HANDLE_DELETED', handle: id, message: /was deleted at .*reuseDeleted=true/ }, what);
  }
  t.equal((await c.call('GET', `/api/handles/${id}`)).status, 404, 'nothing was written');

  const notAdmin = await c.call('PUT', `/api/handles/${id}?reuseDeleted=true`, { token: reg, body: sampleValues });
  t.equal(notAdmin.status, 403);
  t.match(notAdmin.json, { code: 'IDN_FORBIDDEN', message: /needs an admin token/ });

  const auditBefore = (await c.node.store.auditPage(0, 1_000_000)).length;
  const again = await c.call('PUT', `/api/handles/${id}?reuseDeleted=true`, { token: ADMIN, body: sampleValues });
  t.equal(again.status, 200, again.text);
  t.same(again.json, { responseCode: 1, handle: id });
  t.equal((await c.call('GET', `/api/handles/${id}`)).status, 200, 'resolves again');
  const entries = await c.node.store.auditPage(auditBefore, 10);
  t.equal(entries.length, 1, 'one audit entry');
  t.match(entries[0], { action: 'record.reregister', target: id }, 'the audit entry says it was a re-registration');
  const versions = await c.node.store.versions('88.100.7/gone-1', 0, 10);
  t.same(
    versions.map((v) => [v.version, v.action, v.valuesJson === null]),
    [
      [1, 'record.create', false],
      [2, 'record.delete', true],
      [3, 'record.reregister', false],
    ],
  );
  t.equal((await c.call('PUT', `/api/handles/${id}`, { token: reg, body: [sampleValues[1]] })).status, 200, 'once back, it is an ordinary record');
  t.same(await c.node.store.verifyAudit(), { ok: true, checked: (await c.node.store.auditHead()).seq }, 'the chain verifies with the re-registration in it');
  const fresh = await c.call('PUT', '/api/handles/88.100.7/NEVER-DELETED?reuseDeleted=true', { token: ADMIN, body: sampleValues });
  t.equal(fresh.status, 200, 'reuseDeleted on an identifier never deleted is an ordinary create');
  t.equal((await c.node.store.auditPage(0, 1_000_000)).at(-1)?.action, 'record.create');
});

t.test('bulk refuses a deleted identifier per line; a node without history keeps no tombstones', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  await c.call('PUT', '/api/handles/88.100.7/B-GONE', { token: reg, body: sampleValues });
  await c.call('DELETE', '/api/handles/88.100.7/B-GONE', { token: reg });
  const body = [JSON.stringify({ handle: '88.100.7/b-gone', values: sampleValues }), JSON.stringify({ handle: '88.100.7/B-NEW', values: sampleValues })].join(
    '\n',
  );
  const r = await c.call('POST', '/api/prefixes/88.100.7/handles', { token: ADMIN, body, headers: { 'content-type': 'application/x-ndjson' } });
  t.equal(r.status, 200);
  const lines = r.text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.match(lines[0], { line: 1, handle: '88.100.7/B-GONE', responseCode: 101, message: /was deleted at .*reuseDeleted=true/ });
  t.match(lines[1], { line: 2, handle: '88.100.7/B-NEW', responseCode: 1 });
  t.match(lines[2], { summary: true, total: 2, ok: 1, failed: 1 });
  t.equal((await c.call('GET', '/api/handles/88.100.7/B-GONE')).status, 404, 'the deleted line was not written');

  const file = join(tempDir(t), 'again.ndjson');
  writeFileSync(file, `${JSON.stringify({ handle: '88.100.7/B-GONE', values: sampleValues })}\n`);
  const imported = await runCli(['import', file, '--prefix', '88.100.7'], storeEnv(c.config));
  t.equal(imported.code, 1, 'idnode import refuses it too');
  t.match(JSON.parse(imported.out), { summary: true, total: 1, ok: 0, failed: 1 });
  t.match(imported.err, /88\.100\.7\/B-GONE was deleted at/);
  // Had the import written it, the feed would say so: the node reads it before looking.
  await c.node.changes.caughtUp(await c.node.store.changesHead());
  t.equal((await c.call('GET', '/api/handles/88.100.7/B-GONE')).status, 404, 'and writes nothing');

  const bare = await startNode(t, { history: false });
  const reg2 = await registrar(bare);
  await bare.call('PUT', '/api/handles/88.100.7/T', { token: reg2, body: sampleValues });
  await bare.call('DELETE', '/api/handles/88.100.7/T', { token: reg2 });
  t.equal(
    (await bare.call('PUT', '/api/handles/88.100.7/T', { token: reg2, body: sampleValues })).status,
    200,
    'history: false keeps no versions, so no tombstone',
  );
});
