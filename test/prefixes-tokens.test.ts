import t from 'tap';
import { ADMIN, registrar, sampleValues, startNode } from './helpers.js';

t.test('prefixes: create hosted and delegated, get, list, patch, delete', async (t) => {
  const c = await startNode(t);
  const created = await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.7', owner: { name: 'Acme', contact: 'a@b' } } });
  t.equal(created.status, 201);
  t.same(created.json, { prefix: '88.100.7', owner: { name: 'Acme', contact: 'a@b' }, status: 'active', parent: '88.100' });
  const deleg = await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.9', owner: { name: 'E' }, site: 'http://127.0.0.1:8009/' } });
  t.same(deleg.json, { prefix: '88.100.9', owner: { name: 'E' }, site: 'http://127.0.0.1:8009', status: 'active', parent: '88.100' });
  t.same((await c.call('GET', '/api/prefixes/88.100.7', { token: ADMIN })).json, created.json);
  t.same((await c.call('GET', '/api/prefixes/88.100', { token: ADMIN })).json, { prefix: '88.100', owner: {}, status: 'active', parent: '88', homed: true });
  t.same(
    (await c.call('GET', '/api/prefixes?parent=88.100', { token: ADMIN })).json.prefixes.map((p: any) => p.prefix),
    ['88.100.7', '88.100.9'],
  );
  t.same((await c.call('GET', '/api/prefixes?parent=88.100.7', { token: ADMIN })).json.prefixes, []);
  t.equal((await c.call('GET', '/api/prefixes', { token: ADMIN })).json.prefixes.length, 2);
  const patched = await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { owner: { name: 'Acme 2' }, status: 'suspended' } });
  t.match(patched.json, { owner: { name: 'Acme 2' }, status: 'suspended' });
  const undelegate = await c.call('PATCH', '/api/prefixes/88.100.9', { token: ADMIN, body: { site: null } });
  t.equal(undelegate.json.site, undefined);
  await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { status: 'active' } });
  await c.call('PUT', '/api/handles/88.100.7/x', { token: ADMIN, body: sampleValues });
  const notEmpty = await c.call('DELETE', '/api/prefixes/88.100.7', { token: ADMIN });
  t.equal(notEmpty.status, 409);
  t.match(notEmpty.json, { code: 'IDN_PREFIX_NOT_EMPTY', message: /still holds 1 identifiers/ });
  const delegateNonEmpty = await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { site: 'http://127.0.0.1:9' } });
  t.match(delegateNonEmpty.json, { code: 'IDN_PREFIX_NOT_EMPTY' });
  await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.7.1', owner: { name: 'Child' } } });
  await c.call('DELETE', '/api/handles/88.100.7/x', { token: ADMIN });
  t.match((await c.call('DELETE', '/api/prefixes/88.100.7', { token: ADMIN })).json, {
    code: 'IDN_PREFIX_NOT_EMPTY',
    message: /child prefixes \(88.100.7.1\)/,
  });
  t.equal((await c.call('DELETE', '/api/prefixes/88.100.7.1', { token: ADMIN })).status, 200);
  t.equal((await c.call('DELETE', '/api/prefixes/88.100.7', { token: ADMIN })).status, 200);
  t.equal((await c.call('GET', '/api/prefixes/88.100.7', { token: ADMIN })).status, 404);
});

t.test('prefixes: redirect is set, listed, unset and checked', async (t) => {
  const c = await startNode(t);
  const made = await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.7', owner: { name: 'Acme' }, redirect: true } });
  t.equal(made.status, 201, made.text);
  t.same(made.json, { prefix: '88.100.7', owner: { name: 'Acme' }, status: 'active', parent: '88.100', redirect: true });
  t.same((await c.call('GET', '/api/prefixes/88.100.7', { token: ADMIN })).json, made.json, 'stored');
  t.equal((await c.call('GET', '/api/prefixes', { token: ADMIN })).json.prefixes[0].redirect, true, 'listed');
  const off = await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { redirect: false } });
  t.equal(off.json.redirect, false);
  const other = await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { owner: { name: 'Acme 2' } } });
  t.equal(other.json.redirect, false, 'a PATCH without redirect keeps it');
  const unset = await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { redirect: null } });
  t.equal(unset.status, 200);
  t.equal('redirect' in unset.json, false, 'null unsets it: the prefix inherits');
  for (const [method, path, body] of [
    ['PATCH', '/api/prefixes/88.100.7', { redirect: 1 }],
    ['PATCH', '/api/prefixes/88.100.7', { redirect: 'true' }],
    ['POST', '/api/prefixes', { prefix: '88.100.8', owner: { name: 'X' }, redirect: null }],
  ] as const) {
    const r = await c.call(method, path, { token: ADMIN, body });
    t.equal(r.status, 400, JSON.stringify(body));
    t.match(r.json, { code: 'IDN_INVALID_VALUE', message: /redirect must be true or false/ });
  }
  t.equal((await c.call('PATCH', '/api/prefixes/88.100', { token: ADMIN, body: { redirect: true } })).status, 404, 'a homed prefix follows face.redirect');
  t.same(await c.node.store.verifyAudit(), { ok: true, checked: (await c.node.store.auditHead()).seq });
});

t.test('prefix input errors and permissions', async (t) => {
  const c = await startNode(t);
  await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.9', owner: { name: 'E' }, site: 'http://127.0.0.1:9' } });
  const reg = await registrar(c);
  const cases: Array<[unknown, number, string, RegExp]> = [
    [{ prefix: '88.100.7', owner: { name: 'X' } }, 409, 'IDN_PREFIX_EXISTS', /already exists/],
    [{ prefix: '88.100', owner: { name: 'X' } }, 400, 'IDN_NOT_RESPONSIBLE', /not under a prefix this node homes/],
    [{ prefix: '77.1', owner: { name: 'X' } }, 400, 'IDN_NOT_RESPONSIBLE', /not under/],
    [{ prefix: '88.100.9.1', owner: { name: 'X' } }, 400, 'IDN_NOT_RESPONSIBLE', /delegated to http:\/\/127.0.0.1:9/],
    [{ prefix: '88..1', owner: { name: 'X' } }, 400, 'IDN_INVALID_VALUE', /prefix: /],
    [{ prefix: 5, owner: { name: 'X' } }, 400, 'IDN_INVALID_VALUE', /prefix must be a string/],
    [{ prefix: '88.100.5' }, 400, 'IDN_INVALID_VALUE', /owner must be an object/],
    [{ prefix: '88.100.5', owner: { name: '' } }, 400, 'IDN_INVALID_VALUE', /owner.name/],
    [{ prefix: '88.100.5', owner: { name: 'X' }, site: 'ftp://x' }, 400, 'IDN_INVALID_VALUE', /site must be an http\(s\) base URL/],
    [{ prefix: '88.100.5', owner: { name: 'X' }, site: 7 }, 400, 'IDN_INVALID_VALUE', /site must be the base URL/],
    [{ prefix: '88.100.5', owner: { name: 'X' }, extra: 1 }, 400, 'IDN_INVALID_VALUE', /unknown field "extra"/],
    [[1], 400, 'IDN_INVALID_VALUE', /must be a JSON object/],
  ];
  for (const [body, http, code, msg] of cases) {
    const r = await c.call('POST', '/api/prefixes', { token: ADMIN, body });
    t.equal(r.status, http, JSON.stringify(body));
    t.match(r.json, { code, message: msg }, JSON.stringify(body));
  }
  t.equal((await c.call('POST', '/api/prefixes', { body: { prefix: '88.100.5', owner: { name: 'X' } } })).status, 401);
  t.equal((await c.call('POST', '/api/prefixes', { token: reg, body: { prefix: '88.100.5', owner: { name: 'X' } } })).status, 403);
  t.equal((await c.call('GET', '/api/prefixes', { token: reg })).status, 403);
  t.match((await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { status: 'gone' } })).json, { message: /status must be one of/ });
  t.match((await c.call('PATCH', '/api/prefixes/88.100.6', { token: ADMIN, body: {} })).json, { code: 'IDN_PREFIX_NOT_FOUND' });
  t.match((await c.call('GET', '/api/prefixes?parent=88..1', { token: ADMIN })).json, { code: 'IDN_INVALID_VALUE' });
  t.match((await c.call('POST', '/api/prefixes', { token: ADMIN })).json, { code: 'IDN_BODY_UNPARSABLE' });
});

t.test('tokens: secret once, hash only, scoped roles, revoke', async (t) => {
  const c = await startNode(t);
  const made = await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'registrar', prefixes: ['88.100.7'], label: 'acme line 1' } });
  t.equal(made.status, 201);
  t.match(made.json, { id: /^tok_[0-9a-f]{16}$/, role: 'registrar', prefixes: ['88.100.7'], secret: /^idn_[\w-]{43}$/ });
  t.same(Object.keys(made.json).sort(), ['id', 'prefixes', 'role', 'secret']);
  const stored = (await c.node.store.tokenById(made.json.id))!;
  t.notOk(JSON.stringify(stored).includes(made.json.secret), 'the secret is not stored');
  t.match(stored.secretHash, /^[0-9a-f]{64}$/);
  const auditText = JSON.stringify(await c.node.store.auditPage(0, 1_000_000));
  t.ok(auditText.includes(made.json.id), 'the audit log names the token it created');
  t.notOk(auditText.includes(made.json.secret), 'nor written to the audit log');
  const list = await c.call('GET', '/api/tokens', { token: ADMIN });
  t.equal(list.json.tokens.length, 2);
  t.notOk(list.text.includes('secret'), 'listing never shows secrets or hashes');
  const revoked = await c.call('DELETE', `/api/tokens/${made.json.id}`, { token: ADMIN });
  t.match(revoked.json, { id: made.json.id, revokedAt: /Z$/ });
  const use = await c.call('PUT', '/api/handles/88.100.7/x', { token: made.json.secret, body: sampleValues });
  t.equal(use.status, 401);
  t.match(use.json, { responseCode: 403, message: /revoked/ });
  t.equal((await c.call('DELETE', `/api/tokens/${made.json.id}`, { token: ADMIN })).status, 200, 'revoking twice is harmless');
  t.match((await c.call('DELETE', '/api/tokens/tok_nope', { token: ADMIN })).json, { code: 'IDN_TOKEN_NOT_FOUND' });
  const cases: Array<[unknown, RegExp]> = [
    [{ role: 'root' }, /role must be one of/],
    [{ role: 'registrar' }, /needs at least one prefix/],
    [{ role: 'node' }, /needs at least one prefix/],
    [{ role: 'admin', prefixes: ['88.100'] }, /leave "prefixes" out/],
    [{ role: 'registrar', prefixes: '88.100.7' }, /prefixes must be a list/],
    [{ role: 'registrar', prefixes: ['88..7'] }, /prefixes: /],
    [{ role: 'registrar', prefixes: ['99.1'] }, /not under a prefix this node homes/],
    [{ role: 'auditor', label: 5 }, /label must be a string/],
  ];
  for (const [body, msg] of cases)
    t.match((await c.call('POST', '/api/tokens', { token: ADMIN, body })).json, { responseCode: 202, message: msg }, String(msg));
  t.equal(
    (await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'node', prefixes: ['99.1'] } })).status,
    201,
    'node tokens may name a child node prefix anywhere',
  );
  const reg = await registrar(c);
  t.equal((await c.call('POST', '/api/tokens', { token: reg, body: { role: 'admin' } })).status, 403);
  t.equal((await c.call('GET', '/api/tokens')).status, 401);
});

t.test('operations: health, readiness, OpenAPI and docs', async (t) => {
  const c = await startNode(t);
  t.same((await c.call('GET', '/healthz')).json, { status: 'ok' });
  const ready = await c.call('GET', '/readyz');
  t.equal(ready.status, 200);
  t.match(ready.json, { ready: true, store: 'ok', cache: { maxBytes: 268435456 } });
  const spec = await c.call('GET', '/api/openapi.json');
  t.equal(spec.status, 200);
  t.match(spec.json.openapi, /^3\./);
  for (const p of ['/api/handles/*', '/api/resolve', '/api/prefixes', '/api/prefixes/{prefix}', '/api/tokens', '/api/tokens/{id}'])
    t.ok(spec.json.paths[p] ?? spec.json.paths[p.replace('*', '{*}')], `documents ${p}`);
  const put = spec.json.paths['/api/handles/{*}']?.put ?? spec.json.paths['/api/handles/*']?.put;
  t.ok(put?.requestBody, 'the record body is documented although our own code validates it');
  const docs = await c.call('GET', '/docs/');
  t.equal(docs.status, 200);
  t.match(docs.text, /swagger/i);
  await c.node.store.close();
  const down = await c.call('GET', '/readyz');
  t.equal(down.status, 503);
  t.match(down.json, { ready: false, store: 'unavailable' });
});

t.test('/readyz and seeding a store that has records read one row, never count every record', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  t.equal((await c.call('PUT', '/api/handles/88.100.7/R-1', { token: reg, body: sampleValues })).status, 200);
  // Counting scans a whole index on SQLite, with the event loop blocked: a probe must not.
  const store = c.node.store;
  const count = store.totalRecords.bind(store);
  let counted = 0;
  store.totalRecords = () => {
    counted++;
    return count();
  };
  const ready = await c.call('GET', '/readyz');
  t.equal(ready.status, 200);
  t.match(ready.json, { ready: true, store: 'ok' });
  const { seedIfEmpty } = await import('../src/registry/seed.js');
  t.equal(await seedIfEmpty({ store }, 'no-such-seed-dir'), 0, 'a store with a record is not seeded (the seed files are not even read)');
  t.equal(counted, 0, 'neither counted the records');
});
