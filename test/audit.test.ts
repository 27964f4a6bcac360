import t from 'tap';
import { main } from '../src/cli/main.js';
import { auditHash, GENESIS_HASH, type StoreEngine, versionLine, type WriteTx } from '../src/store/index.js';
import { ADMIN, type Client, registrar, runCli, sampleValues, startNode, TEST_ENGINE, testClock } from './helpers.js';
import { ENGINES, storeOpener } from './pg.js';
import { attacker, type Raw, tamper } from './tamper.js';

const stores = storeOpener(t);

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

t.test(
  'the audit log: every write, hash-chained, paged; verify names the first tampered entry',
  { skip: TEST_ENGINE === 'postgres' && 'edits the SQLite file; the engine loop of this file tampers PostgreSQL' },
  async (t) => {
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
  },
);

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

t.test(
  'verify covers the record versions of every action: a seeded version edited in the file breaks it',
  { skip: TEST_ENGINE === 'postgres' && 'edits the SQLite file; the engine loop of this file tampers PostgreSQL' },
  async (t) => {
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
    // The record's current version: its values are stored once, in its records row (the version row holds '').
    t.equal(row.v, '', 'the current version holds no copy of the values');
    const values = db.rows('records', { handle_key: row.key })[0]!.values_json as string;
    db.setVersionValues(seed.seq, values.replace(/"index":1,/, '"index":9,'), row.key);
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
  },
);

t.test(
  'verify finds an inserted, deleted or altered row of every audited table',
  { skip: TEST_ENGINE === 'postgres' && 'edits the SQLite file; the engine loop of this file tampers PostgreSQL' },
  async (t) => {
    const c = await startNode(t);
    const reg = await registrar(c);
    const spare = (await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'auditor', label: 'spare' } })).json;
    t.equal((await c.call('DELETE', `/api/tokens/${spare.id}`, { token: ADMIN })).status, 200, 'a revoked token');
    t.equal((await c.call('PUT', '/api/handles/88.100.7/A', { token: reg, body: sampleValues })).status, 200);
    t.equal((await c.call('PUT', '/api/handles/88.100.7/B', { token: reg, body: sampleValues })).status, 200);
    t.equal((await c.call('DELETE', '/api/handles/88.100.7/B', { token: reg })).status, 200, 'a deletion version');
    const tpl = await c.call('PUT', '/api/templates/88.100.7/1', {
      token: reg,
      body: { items: [{ name: 'batchNo', idIndex: 2001, idType: 'batch', dataType: 'string' }] },
    });
    t.ok(tpl.status < 300, tpl.text);
    const withTemplate = [
      { index: 1001, type: 'TEMPLATE', data: '1' },
      { index: 2001, type: 'batch', data: 'B-1' },
    ];
    t.equal((await c.call('PUT', '/api/handles/88.100.7/T', { token: reg, body: withTemplate })).status, 200, 'marks the template used');
    const event = (action: string, children: string[]) =>
      c.call('POST', '/api/events', { token: reg, body: { type: 'aggregation', action, parent: '88.100.7/A', children, eventTime: '2026-01-01T00:00:00Z' } });
    t.equal((await event('ADD', ['88.100.7/X', '88.100.7/Y'])).status, 201);
    t.equal((await event('DELETE', ['88.100.7/Y'])).status, 201, 'a closed edge');
    // A report from a child node, written through the store as the sync receiver writes it.
    await c.node.store.write({ actor: 'tok_child', action: 'sync.report.accepted', target: 'tok_child:k1' }, async (tx) => {
      const id = await tx.insertReport({ reporter: 'tok_child', idemKey: 'k1', kind: 'stats', bodyJson: '{"records":1}', outcome: 'accepted', message: null });
      return { result: id, payload: `${id}\n{"records":1}`, keepPayload: true };
    });
    const aud = await auditor(c);
    const verify = async () => (await c.call('GET', '/api/audit/verify', { token: aud })).json;
    const clean = await verify();
    t.match(clean, { ok: true, checked: Number });

    const db = tamper(c.config.db);
    t.teardown(() => db.close());
    const one = (table: string, where: Raw) => {
      const rows = db.rows(table, where);
      if (rows.length !== 1) throw new Error(`${table} ${JSON.stringify(where)}: ${rows.length} rows`);
      return rows[0]!;
    };
    const adminId = (await c.call('GET', '/api/tokens', { token: ADMIN })).json.tokens.find((x: any) => x.label === 'IDNODE_ADMIN_TOKEN').id;
    const regRow = db.rows('tokens', { role: 'registrar' })[0]!;
    const recordA = { handle_key: '88.100.7/a' };
    const versionA = { handle_key: '88.100.7/a', version: 1 };
    const deletedB = { handle_key: '88.100.7/b', version: 2 };
    const closed = db.rows('edges').find((e) => e.until !== null)!;
    const open = db.rows('edges').find((e) => e.until === null)!;
    const eventRow = db.rows('events')[0]!;
    const payloadSeq = db.rows('audit_payloads').at(-1)!.seq;

    // Each but record_versions' insert, delete and values_json was let through before write sets.
    type Case = [string, string, () => void, () => void];
    const update = (table: string, where: Raw, set: Raw): Case => {
      const before = one(table, where);
      const undo = Object.fromEntries(Object.keys(set).map((k) => [k, before[k]]));
      return [`${table}: ${Object.keys(set).join(', ')} altered`, table, () => db.updateRows(table, set, where), () => db.updateRows(table, undo, where)];
    };
    const remove = (table: string, where: Raw): Case => {
      const before = one(table, where);
      return [`${table}: a row deleted`, table, () => db.deleteRows(table, where), () => db.insertRow(table, before)];
    };
    const insert = (table: string, row: Raw, key: Raw): Case => [
      `${table}: a row inserted`,
      table,
      () => db.insertRow(table, row),
      () => db.deleteRows(table, key),
    ];

    const cases: Case[] = [
      insert(
        'tokens',
        {
          id: 'tok_forged',
          role: 'admin',
          prefixes_json: '[]',
          secret_hash: 'f'.repeat(64),
          label: null,
          created_at: '2026-01-01T00:00:00Z',
          revoked_at: null,
        },
        { id: 'tok_forged' },
      ),
      remove('tokens', { id: regRow.id }),
      update('tokens', { id: regRow.id }, { role: 'admin' }),
      update('tokens', { id: regRow.id }, { prefixes_json: '[]' }),
      update('tokens', { id: regRow.id }, { secret_hash: 'e'.repeat(64) }),
      update('tokens', { id: spare.id }, { revoked_at: null }),
      update('tokens', { id: adminId }, { label: 'someone' }),
      update('tokens', { id: regRow.id }, { created_at: '2020-01-01T00:00:00Z' }),
      insert(
        'prefixes',
        {
          prefix_key: '88.100.9',
          prefix: '88.100.9',
          parent_key: '88.100',
          owner_json: '{}',
          site: null,
          status: 'active',
          created_at: '2026-01-01T00:00:00Z',
          updated_at: '2026-01-01T00:00:00Z',
        },
        { prefix_key: '88.100.9' },
      ),
      remove('prefixes', { prefix_key: '88.100.7' }),
      update('prefixes', { prefix_key: '88.100.7' }, { status: 'suspended' }),
      update('prefixes', { prefix_key: '88.100.7' }, { owner_json: '{"name":"Mallory"}' }),
      update('prefixes', { prefix_key: '88.100.7' }, { site: 'https://evil.example' }),
      update('prefixes', { prefix_key: '88.100.7' }, { parent_key: '88.1' }),
      insert(
        'templates',
        { prefix_key: '88.100.7', version: '2', prefix: '88.100.7', body_json: '{"items":[]}', used: 0, created_at: 'x', updated_at: 'x' },
        { prefix_key: '88.100.7', version: '2' },
      ),
      remove('templates', { prefix_key: '88.100.7', version: '1' }),
      update('templates', { prefix_key: '88.100.7', version: '1' }, { body_json: '{"items":[]}' }),
      update('templates', { prefix_key: '88.100.7', version: '1' }, { used: 0 }),
      insert('events', { ...eventRow, id: 99, body_json: '{"type":"aggregation"}', audit_seq: 1 }, { id: 99 }),
      remove('events', { id: eventRow.id }),
      update('events', { id: eventRow.id }, { body_json: '{}' }),
      update('events', { id: eventRow.id }, { event_time: '2020-01-01T00:00:00.000Z' }),
      update('events', { id: eventRow.id }, { actor: 'tok_someone' }),
      insert('edges', { ...open, id: 99, to_key: '88.100.7/z' }, { id: 99 }),
      remove('edges', { id: open.id }),
      update('edges', { id: closed.id }, { until: null }),
      update('edges', { id: open.id }, { to_key: '88.100.7/z' }),
      update('edges', { id: open.id }, { since: '2020-01-01T00:00:00.000Z' }),
      insert('lineage_names', { key: '88.100.7/w', handle: '88.100.7/W' }, { key: '88.100.7/w' }),
      remove('lineage_names', { key: '88.100.7/x' }),
      update('lineage_names', { key: '88.100.7/x' }, { handle: '88.100.7/x-renamed' }),
      insert(
        'sync_reports',
        { id: 99, reporter: 'tok_child', idem_key: 'k2', kind: 'stats', body_json: '{}', outcome: 'accepted', message: null, received_at: 'x' },
        { id: 99 },
      ),
      remove('sync_reports', { idem_key: 'k1' }),
      update('sync_reports', { idem_key: 'k1' }, { outcome: 'rejected' }),
      update('sync_reports', { idem_key: 'k1' }, { body_json: '{"records":1000}' }),
      insert('record_versions', { ...one('record_versions', versionA), version: 7, values_json: '[]' }, { handle_key: '88.100.7/a', version: 7 }),
      remove('record_versions', deletedB),
      update('record_versions', versionA, { actor: 'tok_someone' }),
      update('record_versions', versionA, { at: '2020-01-01T00:00:00Z' }),
      update('record_versions', versionA, { action: 'record.update' }),
      [
        'record_versions: version renumbered',
        'record_versions',
        () => db.updateRows('record_versions', { version: 5 }, versionA),
        () => db.updateRows('record_versions', { version: 1 }, { ...versionA, version: 5 }),
      ],
      update('record_versions', deletedB, { values_json: one('record_versions', { handle_key: '88.100.7/b', version: 1 }).values_json }),
      insert('records', { ...one('records', recordA), id: 99, handle_key: '88.100.7/c', handle: '88.100.7/C' }, { handle_key: '88.100.7/c' }),
      remove('records', recordA),
      update('records', recordA, { values_json: '[]' }),
      update('records', recordA, { public_json: '[]' }),
      update('records', recordA, { etag: '"forged"' }),
      update('records', recordA, { max_age: 1 }),
      update('records', recordA, { version: 9 }),
      update('records', recordA, { updated_at: '2020-01-01T00:00:00Z' }),
      update('records', recordA, { handle: '88.100.7/a' }),
      remove('audit_payloads', { seq: payloadSeq }),
    ];
    for (const [name, table, edit, undo] of cases) {
      edit();
      const v = await verify();
      t.match(v, { ok: false, firstBroken: { seq: Number, reason: String } }, name);
      if (v.firstBroken?.table !== undefined) t.equal(v.firstBroken.table, table, `${name}: names the table`);
      undo();
      t.same(await verify(), clean, `${name}: undone, it verifies again`);
    }

    // Offline too: the inserted admin token is named by the command line's verify.
    cases[0]![2]();
    const offline = await runCli(['audit', 'verify', '--db', c.config.db]);
    t.equal(offline.code, 1, offline.err);
    t.match(JSON.parse(offline.out), { ok: false, firstBroken: { table: 'tokens', key: '["tok_forged"]', reason: /not in the log.*inserted/ } });
  },
);

t.test(
  'verify runs in slices: a resolution issued while it runs is answered first; one over audit.verifyConcurrency is 503',
  { skip: TEST_ENGINE === 'postgres' && 'builds its log in the SQLite file' },
  async (t) => {
    const c = await startNode(t, { audit: { verifySlice: 1, verifyConcurrency: 1 } });
    await registrar(c);
    // A long log built through the store, one write (one entry) each, not thousands of HTTP calls.
    const n = 400;
    const values = (i: number) => JSON.stringify([{ index: 1, type: 'URL', data: { format: 'string', value: `https://example.com/${i}` } }]);
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        c.node.store.write({ actor: 'test', action: 'record.update', target: '88.100.7/L' }, async (tx) => {
          await tx.putRecord({ ...storedRecord('88.100.7/L', values(i)) });
          return { result: i, payload: versionLine('88.100.7/L', values(i)) };
        }),
      ),
    );
    const aud = await auditor(c);
    const total = (await c.node.store.auditHead()).seq;
    t.ok(total > n, 'the log is long');

    let finished = false;
    const verifying = c.call('GET', '/api/audit/verify', { token: aud }).then((r) => {
      finished = true;
      return r;
    });
    // Waits for the event "the verification is listed as running" (each poll is itself answered meanwhile).
    let first: any;
    while (first === undefined && !finished) first = (await c.call('GET', '/api/audit/verify/progress', { token: aud })).json.running[0];
    t.equal(finished, false, 'the verification is under way');
    t.match(first, { id: Number, startedAt: /Z$/, phase: /^(chain|tables)$/, checked: Number, total, rows: Number });

    const busy = await c.call('GET', '/api/audit/verify', { token: aud });
    t.equal(busy.status, 503, 'over the bound');
    t.match(busy.json, { code: 'IDN_UNAVAILABLE', responseCode: 3, message: /audit.verifyConcurrency/ });
    t.equal(busy.headers.get('retry-after'), '5');

    const resolved = await c.call('GET', '/api/handles/88.100.7/L');
    t.equal(resolved.status, 200, resolved.text);
    t.equal(resolved.json.values[0].data.value, `https://example.com/${n - 1}`);
    t.equal(finished, false, 'the resolution issued after the verification started was answered before it finished');
    const later = (await c.call('GET', '/api/audit/verify/progress', { token: aud })).json.running[0];
    t.ok(later !== undefined && later.checked + later.rows > first.checked + first.rows, 'and the verification went on meanwhile');

    const verdict = await verifying;
    t.same(verdict.json, { ok: true, checked: total });
    t.same((await c.call('GET', '/api/audit/verify/progress', { token: aud })).json, { running: [] }, 'none left running');
    t.equal((await c.call('GET', '/api/audit/verify', { token: aud })).status, 200, 'the bound is free again');
  },
);

function storedRecord(handle: string, valuesJson: string) {
  return { handleKey: handle.toLowerCase(), handle, prefixKey: '88.100.7', valuesJson, publicJson: null, maxAge: 0, expiresAt: null, etag: null };
}

t.test('GET /api/audit carries each entry rowsDigest: a client recomputes every hash', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  await c.call('PUT', '/api/handles/88.100.7/A', { token: reg, body: sampleValues });
  const entries = (await c.call('GET', '/api/audit', { token: ADMIN })).json.entries;
  t.ok(entries.length >= 4);
  let prev = GENESIS_HASH;
  for (const e of entries) {
    t.match(e.rowsDigest, /^[0-9a-f]{64}$/, `entry ${e.seq} has a write set`);
    t.equal(e.hash, auditHash(prev, e), `entry ${e.seq} recomputes from the answer alone`);
    prev = e.hash;
  }
});

t.test(
  'idnode audit verify on a terminal redraws its progress on stderr; stdout keeps the verdict alone',
  { skip: TEST_ENGINE === 'postgres' && 'the offline verify of a SQLite file (--db)' },
  async (t) => {
    const c = await startNode(t);
    await registrar(c);
    let out = '';
    let err = '';
    const code = await main(['audit', 'verify', '--db', c.config.db], { stdout: (s) => (out += s), stderr: (s) => (err += s), env: {}, isTTY: true });
    t.equal(code, 0, err);
    const total = (await c.node.store.auditHead()).seq;
    t.same(JSON.parse(out), { ok: true, checked: total });
    t.match(err, new RegExp(`\\rentries 0/${total}.*\\rentries ${total}/${total}, rows [1-9]\\d*\\n$`, 's'));
  },
);

/** Writes rows into every audited table through the store, as the registry's writes would. */
async function everyTable(s: StoreEngine) {
  const write = <T>(action: string, target: string, apply: (tx: WriteTx) => Promise<T>, payload = `${action} ${target}`) =>
    s.write({ actor: 'tok_admin', action, target }, async (tx) => ({ result: await apply(tx), payload, keepPayload: !action.startsWith('record.') }));
  const token = (id: string, role: 'admin' | 'registrar' | 'auditor') => ({
    id,
    role,
    prefixesJson: '["88.100.7"]',
    secretHash: id.padEnd(64, '0'),
    label: null,
    createdAt: '2026-01-01T00:00:00Z',
    revokedAt: null,
  });
  await write('token.create', 'tok_reg', async (tx) => {
    await tx.insertToken(token('tok_reg', 'registrar'));
    await tx.insertToken(token('tok_spare', 'auditor'));
  });
  await write('token.revoke', 'tok_spare', (tx) => tx.revokeToken('tok_spare'));
  const prefix = { prefix: '88.100.7', parentKey: '88.100', ownerJson: '{"name":"Acme"}', site: null, status: 'active' as const };
  await write('prefix.create', '88.100.7', (tx) =>
    tx.putPrefix({ prefixKey: '88.100.7', ...prefix, createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z', redirect: true }),
  );
  const put = (handle: string, values: string) =>
    write(
      'record.create',
      handle,
      (tx) =>
        tx.putRecord({
          handleKey: handle.toLowerCase(),
          handle,
          prefixKey: '88.100.7',
          valuesJson: values,
          publicJson: null,
          maxAge: 86400,
          expiresAt: null,
          etag: '"e"',
        }),
      versionLine(handle, values),
    );
  await put('88.100.7/A', '[{"index":1}]');
  await put('88.100.7/B', '[{"index":2}]');
  await write('record.delete', '88.100.7/B', (tx) => tx.deleteRecord('88.100.7/b', '88.100.7/B'), versionLine('88.100.7/B', null));
  const template = { prefixKey: '88.100.7', version: '1', prefix: '88.100.7', bodyJson: '{"items":[]}', used: 0 as const };
  await write('template.put', '88.100.7@1', (tx) => tx.putTemplate({ ...template, createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z' }));
  await write('template.use', '88.100.7@1', (tx) => tx.markTemplateUsed('88.100.7', '1'));
  await write('event.create', '88.100.7/a', async (tx) => {
    const e = await tx.insertEvent({ type: 'aggregation', action: 'ADD', eventTime: '2026-01-01T00:00:00.000Z', bodyJson: '{"type":"aggregation"}' });
    for (const child of ['X', 'Y']) {
      await tx.openEdge('88.100.7/a', `88.100.7/${child.toLowerCase()}`, 'contains', '2026-01-01T00:00:00.000Z', e);
      await tx.nameIdentifier(`88.100.7/${child.toLowerCase()}`, `88.100.7/${child}`);
    }
  });
  await write('event.create', '88.100.7/a', async (tx) => {
    const e = await tx.insertEvent({ type: 'aggregation', action: 'DELETE', eventTime: '2026-01-02T00:00:00.000Z', bodyJson: '{"type":"aggregation"}' });
    await tx.closeEdge('88.100.7/a', '88.100.7/y', 'contains', '2026-01-02T00:00:00.000Z', e);
  });
  await write('sync.report.accepted', 'tok_child:k1', (tx) =>
    tx.insertReport({ reporter: 'tok_child', idemKey: 'k1', kind: 'stats', bodyJson: '{"records":1}', outcome: 'accepted', message: null }),
  );
}

for (const engine of ENGINES)
  t.test(`${engine}: verify finds an inserted, deleted or altered row of every audited table (store writes, raw SQL)`, async (t) => {
    const s = await stores.open(t, engine);
    if (s === undefined) return;
    await everyTable(s);
    const clean = await s.verifyAudit();
    t.same(clean, { ok: true, checked: 11 });
    const db = attacker(s.path);
    t.teardown(() => db.close());
    const one = async (table: string, where: Raw) => {
      const rows = await db.rows(table, where);
      if (rows.length !== 1) throw new Error(`${table} ${JSON.stringify(where)}: ${rows.length} rows`);
      return rows[0]!;
    };
    type Case = [string, string, () => Promise<unknown>, () => Promise<unknown>];
    const update = async (table: string, where: Raw, set: Raw): Promise<Case> => {
      const before = await one(table, where);
      const undo = Object.fromEntries(Object.keys(set).map((k) => [k, before[k]]));
      return [`${table}: ${Object.keys(set).join(', ')} altered`, table, () => db.updateRows(table, set, where), () => db.updateRows(table, undo, where)];
    };
    const remove = async (table: string, where: Raw): Promise<Case> => {
      const before = await one(table, where);
      return [`${table}: a row deleted`, table, () => db.deleteRows(table, where), () => db.insertRow(table, before)];
    };
    const insert = async (table: string, like: Raw, row: Raw, key: Raw): Promise<Case> => {
      const base = await one(table, like);
      return [`${table}: a row inserted`, table, () => db.insertRow(table, { ...base, ...row }), () => db.deleteRows(table, key)];
    };
    const recordA = { handle_key: '88.100.7/a' };
    const versionA = { handle_key: '88.100.7/a', version: 1 };
    const closed = (await db.rows('edges')).find((e) => e.until !== null)!;
    const open = (await db.rows('edges')).find((e) => e.until === null)!;
    const eventId = (await db.rows('events'))[0]!.id;
    const payloadSeq = (await db.rows('audit_payloads')).at(-1)!.seq;
    const cases: Case[] = [
      await insert('tokens', { id: 'tok_reg' }, { id: 'tok_forged', role: 'admin', secret_hash: 'f'.repeat(64) }, { id: 'tok_forged' }),
      await remove('tokens', { id: 'tok_reg' }),
      await update('tokens', { id: 'tok_reg' }, { role: 'admin' }),
      await update('tokens', { id: 'tok_spare' }, { revoked_at: null }),
      await insert('prefixes', { prefix_key: '88.100.7' }, { prefix_key: '88.100.9', prefix: '88.100.9' }, { prefix_key: '88.100.9' }),
      await remove('prefixes', { prefix_key: '88.100.7' }),
      await update('prefixes', { prefix_key: '88.100.7' }, { status: 'suspended' }),
      await update('prefixes', { prefix_key: '88.100.7' }, { redirect: 0 }),
      await update('prefixes', { prefix_key: '88.100.7' }, { redirect: null }),
      await insert('templates', { prefix_key: '88.100.7', version: '1' }, { version: '2' }, { prefix_key: '88.100.7', version: '2' }),
      await remove('templates', { prefix_key: '88.100.7', version: '1' }),
      await update('templates', { prefix_key: '88.100.7', version: '1' }, { used: 0 }),
      await insert('events', { id: eventId }, { id: 99 }, { id: 99 }),
      await remove('events', { id: eventId }),
      await update('events', { id: eventId }, { body_json: '{}' }),
      await insert('edges', { id: open.id }, { id: 99, to_key: '88.100.7/z' }, { id: 99 }),
      await remove('edges', { id: open.id }),
      await update('edges', { id: closed.id }, { until: null }),
      await insert('lineage_names', { key: '88.100.7/x' }, { key: '88.100.7/w' }, { key: '88.100.7/w' }),
      await remove('lineage_names', { key: '88.100.7/x' }),
      await update('lineage_names', { key: '88.100.7/x' }, { handle: '88.100.7/x-renamed' }),
      await insert('sync_reports', { idem_key: 'k1' }, { id: 99, idem_key: 'k2' }, { id: 99 }),
      await remove('sync_reports', { idem_key: 'k1' }),
      await update('sync_reports', { idem_key: 'k1' }, { outcome: 'rejected' }),
      await insert('record_versions', versionA, { version: 7, values_json: '[]' }, { handle_key: '88.100.7/a', version: 7 }),
      await remove('record_versions', { handle_key: '88.100.7/b', version: 2 }),
      await update('record_versions', versionA, { actor: 'tok_someone' }),
      await insert('records', recordA, { id: 99, handle_key: '88.100.7/c', handle: '88.100.7/C' }, { handle_key: '88.100.7/c' }),
      await remove('records', recordA),
      await update('records', recordA, { values_json: '[]' }),
      await update('records', recordA, { id: 42 }),
      await update('records', recordA, { max_age: 1 }),
      await remove('audit_payloads', { seq: payloadSeq }),
    ];
    for (const [name, table, edit, undo] of cases) {
      await edit();
      const v = await s.verifyAudit();
      t.match(v, { ok: false, firstBroken: { seq: Number, reason: String } }, name);
      if (v.firstBroken?.table !== undefined) t.equal(v.firstBroken.table, table, `${name}: names the table`);
      await undo();
      t.same(await s.verifyAudit(), clean, `${name}: undone, it verifies again`);
    }
  });
