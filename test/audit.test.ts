import t from 'tap';
import { ADMIN, type Client, registrar, runCli, sampleValues, startNode, testClock } from './helpers.js';
import { tamper } from './tamper.js';

async function auditor(c: Client): Promise<string> {
  return (await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'auditor' } })).json.secret as string;
}

t.test('history lists every version with who and when; asOf returns the record as it was', async (t) => {
  // Versions carry whole seconds: the clock moves a second between writes.
  const clock = testClock();
  const c = await startNode(t, {}, { now: clock.now });
  const reg = await registrar(c);
  const regId = (await c.call('GET', '/api/tokens', { token: ADMIN })).json.tokens.find((x: any) => x.role === 'registrar').id;
  const id = '88.100.7/Hist-1';
  t.equal((await c.call('PUT', `/api/handles/${id}`, { token: reg, body: [{ index: 1, type: 'URL', data: 'https://a/1' }] })).status, 200);
  clock.advance(1100);
  await c.call('PUT', `/api/handles/${id}`, {
    token: reg,
    body: [
      { index: 1, type: 'URL', data: 'https://a/2' },
      { index: 9, type: 'cost', data: '1 CNY', permissions: '1100' },
    ],
  });
  clock.advance(1100);
  await c.call('DELETE', `/api/handles/${id}`, { token: reg });
  clock.advance(1100);
  // A deleted identifier comes back only by an admin's explicit choice (API.md §3.2).
  await c.call('PUT', `/api/handles/${id}?reuseDeleted=true`, { token: ADMIN, body: [{ index: 1, type: 'URL', data: 'https://a/4' }] });

  const aud = await auditor(c);
  const h = await c.call('GET', '/api/history/88.100.7/hist-1', { token: aud });
  t.equal(h.status, 200, h.text);
  t.equal(h.json.handle, id);
  t.same(
    h.json.versions.map((v: any) => [v.version, v.action, v.actor]),
    [
      [1, 'record.create', regId],
      [2, 'record.update', regId],
      [3, 'record.delete', regId],
      [4, 'record.reregister', (await c.call('GET', '/api/tokens', { token: ADMIN })).json.tokens.find((x: any) => x.label === 'IDNODE_ADMIN_TOKEN').id],
    ],
  );
  t.equal(h.json.versions[2].values, null, 'a deletion has no values');
  t.equal(h.json.versions[1].values[1].permissions, '1100', 'auditors see non-public values');
  const at = h.json.versions.map((v: any) => v.at as string);

  const asOf = async (time: string) => c.call('GET', `/api/history/${id}?asOf=${encodeURIComponent(time)}`, { token: aud });
  const v1 = await asOf(at[0]);
  t.same(v1.json, { responseCode: 1, handle: id, values: h.json.versions[0].values }, 'shaped like a resolution');
  t.equal((await asOf(at[1])).json.values[0].data.value, 'https://a/2');
  const gone = await asOf(at[2]);
  t.equal(gone.status, 404);
  t.match(gone.json, { code: 'IDN_NOT_FOUND', responseCode: 100, message: /was deleted at/ });
  t.equal((await asOf(at[3])).json.values[0].data.value, 'https://a/4');
  const before = await asOf('2020-01-01T00:00:00Z');
  t.match(before.json, { code: 'IDN_NOT_FOUND', message: /did not exist at/ });
  t.equal((await asOf('2099-01-01T08:00:00+08:00')).json.values[0].data.value, 'https://a/4', 'zones are honoured');
  t.match((await asOf('last week')).json, { code: 'IDN_BAD_REQUEST', message: /asOf must be an ISO-8601 time/ });

  const page = await c.call('GET', `/api/history/${id}?limit=2`, { token: aud });
  t.same([page.json.versions.length, page.json.next], [2, 2]);
  const rest = await c.call('GET', `/api/history/${id}?after=2&limit=2`, { token: aud });
  t.same([rest.json.versions.map((v: any) => v.version), rest.json.next], [[3, 4], undefined]);
  t.match((await c.call('GET', `/api/history/${id}?limit=100000`, { token: aud })).json, { code: 'IDN_BAD_REQUEST', message: /limits.pageSizeMax/ });
  t.match((await c.call('GET', '/api/history/88.100.7/never', { token: aud })).json, { code: 'IDN_NOT_FOUND' });
  t.equal((await c.call('GET', `/api/history/${id}`, { token: reg })).status, 403, 'registrars do not read history');
  t.equal((await c.call('GET', `/api/history/${id}`)).status, 401);
});

t.test('the audit log: every write, hash-chained, paged; verify names the first tampered entry', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  await c.call('PUT', '/api/handles/88.100.7/A', { token: reg, body: sampleValues });
  await c.call('PUT', '/api/handles/88.100.7/A', { token: reg, body: sampleValues }); // identical: no entry
  await c.call('DELETE', '/api/handles/88.100.7/A?index=3', { token: reg });
  await c.call('POST', '/api/events', {
    token: reg,
    body: { type: 'aggregation', action: 'ADD', parent: '88.100.7/A', children: ['88.100.7/B'], eventTime: '2026-01-01T00:00:00Z' },
  });
  const aud = await auditor(c);
  const all = await c.call('GET', '/api/audit', { token: aud });
  t.equal(all.status, 200);
  t.same(
    all.json.entries.map((e: any) => e.action),
    ['token.create', 'prefix.create', 'token.create', 'record.create', 'record.values.delete', 'event.aggregation', 'token.create'],
  );
  t.equal(all.json.next, null);
  for (const e of all.json.entries) {
    t.match(e, { seq: Number, at: /Z$/, actor: /^(system|tok_)/, digest: /^[0-9a-f]{64}$/, prevHash: /^[0-9a-f]{64}$/, hash: /^[0-9a-f]{64}$/ });
    t.notMatch(JSON.stringify(e), /test-admin-secret|idn_/, 'no secrets in the log');
  }
  const p1 = await c.call('GET', '/api/audit?limit=3', { token: aud });
  t.same([p1.json.entries.length, p1.json.next], [3, 3]);
  const p2 = await c.call('GET', '/api/audit?after=3&limit=3', { token: ADMIN });
  t.equal(p2.json.entries[0].seq, 4);
  t.equal(p2.json.entries[0].prevHash, p1.json.entries[2].hash, 'chained');
  t.match((await c.call('GET', '/api/audit?limit=0', { token: aud })).json, { code: 'IDN_BAD_REQUEST' });
  t.match((await c.call('GET', '/api/audit?after=x', { token: aud })).json, { code: 'IDN_BAD_REQUEST' });
  t.same((await c.call('GET', '/api/audit/verify', { token: aud })).json, { ok: true, checked: 7 });

  // Tamper with the SQLite file directly, as someone with file access would.
  const db = tamper(c.config.db);
  t.teardown(() => db.close());
  const verify = async () => (await c.call('GET', '/api/audit/verify', { token: aud })).json;

  db.setAuditActor(4, 'tok_someone_else');
  t.match(await verify(), { ok: false, checked: 3, firstBroken: { seq: 4, reason: /hash does not match/ } }, 'edited entry');
  db.setAuditActor(4, all.json.entries[3].actor);
  t.same(await verify(), { ok: true, checked: 7 }, 'restored');

  const versionBefore = db.versionsOf(5)[0]!.values_json as string;
  db.setVersionValues(5, '[]');
  t.match(await verify(), { ok: false, firstBroken: { seq: 5, reason: /record_versions was edited/ } }, 'edited record version');
  db.setVersionValues(5, versionBefore);

  const payload = db.payload(6)!;
  db.setPayload(6, payload.replace('88.100.7/B', '88.100.7/Z'));
  t.match(await verify(), { ok: false, firstBroken: { seq: 6, reason: /payload does not match/ } }, 'edited event payload');
  db.setPayload(6, payload);

  const row5 = db.auditEntry(5)!;
  const payload5 = db.payload(5);
  db.deleteAuditEntry(5);
  t.match(await verify(), { ok: false, checked: 4, firstBroken: { seq: 5, reason: /entry 5 is missing/ } }, 'deleted entry');
  db.insertAuditEntry(row5);
  t.equal(payload5, undefined);
  t.same(await verify(), { ok: true, checked: 7 });

  db.shiftAuditSeqs(6, 100);
  db.insertAuditEntry({
    seq: 6,
    at: '2026-01-01T00:00:00Z',
    actor: 'tok_x',
    action: 'record.create',
    target: '88.100.7/FAKE',
    digest: '0'.repeat(64),
    prev_hash: all.json.entries[4].hash,
    hash: 'f'.repeat(64),
  });
  t.match(await verify(), { ok: false, checked: 5, firstBroken: { seq: 6, reason: /hash does not match/ } }, 'inserted entry');

  // Offline, on the file, while the node still runs (WAL: the node holds no exclusive lock).
  const offline = await runCli(['audit', 'verify', '--db', c.config.db]);
  t.equal(offline.code, 1, offline.err);
  t.match(JSON.parse(offline.out), { ok: false, firstBroken: { seq: 6 } });
  db.deleteAuditEntry(6);
  db.shiftAuditSeqs(101, -100);
  const fixed = await runCli(['audit', 'verify', '--db', c.config.db]);
  t.equal(fixed.code, 0, fixed.err);
  t.same(JSON.parse(fixed.out), { ok: true, checked: 7 });
  const missing = await runCli(['audit', 'verify', '--db', '/nonexistent/x.db']);
  t.equal(missing.code, 2);
  t.match(missing.err, /no database at \/nonexistent\/x.db/);
});

t.test('history off: no versions and no audit entries (the benchmark compares the cost)', async (t) => {
  const c = await startNode(t, { history: false });
  const reg = await registrar(c);
  t.equal((await c.call('PUT', '/api/handles/88.100.7/A', { token: reg, body: sampleValues })).status, 200);
  t.equal((await c.call('PUT', '/api/handles/88.100.7/A', { token: reg, body: [{ index: 1, type: 'URL', data: 'x' }] })).status, 200);
  t.equal((await c.node.store.getRecord('88.100.7/a'))!.version, 2, 'versions still count');
  const aud = await auditor(c);
  t.same((await c.call('GET', '/api/audit', { token: aud })).json, { entries: [], next: null });
  t.equal((await c.call('GET', '/api/history/88.100.7/A', { token: aud })).status, 404);
});

t.test('verify covers the record versions of every action: a seeded version edited in the file breaks it', async (t) => {
  const c = await startNode(t, { seed: true });
  const aud = await auditor(c);
  const verify = async () => (await c.call('GET', '/api/audit/verify', { token: aud })).json;
  const seed = (await c.call('GET', '/api/audit', { token: aud })).json.entries.find((e: any) => e.action === 'seed');
  t.ok(seed, 'seeding is one audit entry');
  t.match(await verify(), { ok: true });

  const db = tamper(c.config.db);
  t.teardown(() => db.close());
  const whole = db.versionsOf(seed.seq)[3]!;
  t.ok(whole, 'the seed wrote record versions');
  const row = { key: whole.handle_key as string, v: whole.values_json as string };
  db.setVersionValues(seed.seq, row.v.replace(/"index":1,/, '"index":9,'), row.key);
  t.match(
    await verify(),
    { ok: false, firstBroken: { seq: seed.seq, reason: /record versions this seed entry wrote do not match its payload/ } },
    'an edited seeded version',
  );
  db.setVersionValues(seed.seq, row.v, row.key);
  t.match(await verify(), { ok: true }, 'restored');

  db.deleteVersion(row.key, seed.seq);
  t.match(await verify(), { ok: false, firstBroken: { seq: seed.seq } }, 'a seeded version removed');
  db.insertVersion(whole);
  t.match(await verify(), { ok: true }, 'put back');
  db.insertVersion({ ...whole, version: 99, audit_seq: 9999 });
  t.match(await verify(), { ok: false, firstBroken: { seq: 9999, reason: /not in the log/ } }, 'a version naming no entry');
});
