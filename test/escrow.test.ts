import t from 'tap';
import { readFileSync, writeFileSync, existsSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/config.js';
import { createNode } from '../src/main.js';
import { exportTo, restoreFrom } from '../src/registry/escrow.js';
import { connectStore, ESCROW_TABLES, openStore } from '../src/store/index.js';
import { ADMIN, client, registrar, runCli, sampleValues, seedCounts, startNode, tempDir, testConfig } from './helpers.js';
import { pgCluster } from './pg.js';

t.test('export → restore rebuilds a node whose answers, lineage, history and audit match', async (t) => {
  const a = await startNode(t, { seed: true });
  const reg = await registrar(a);
  await a.call('PUT', '/api/templates/88.100.7/1', {
    token: reg,
    body: {
      items: [
        { name: 'batchNo', idIndex: 2001, idType: 'batch', dataType: 'string' },
        { name: 'parts', idIndex: 2002, idType: 'parts', dataType: 'reference', referenceType: 'many' },
      ],
    },
  });
  await a.call('PUT', '/api/handles/88.100.7/T-1', {
    token: reg,
    body: [
      { index: 1001, type: 'TEMPLATE', data: '1' },
      { index: 2001, type: 'batch', data: 'B-1' },
      { index: 2002, type: 'parts', data: '88.100.7/P-1,88.100.7/P-2' },
      { index: 9, type: 'cost', data: '1', permissions: '1100' },
    ],
  });
  t.equal((await a.call('PUT', '/api/handles/88.100.1/A', { token: ADMIN, body: sampleValues })).status, 200);
  t.equal((await a.call('DELETE', '/api/handles/88.100.1/A?index=3', { token: ADMIN })).status, 200);
  await a.call('POST', '/api/events', {
    token: reg,
    body: { type: 'aggregation', action: 'ADD', parent: '88.100.7/T-1', children: ['88.100.7/X'], eventTime: '2026-01-01T00:00:00Z' },
  });
  const dir = tempDir(t);
  const exported = await exportTo(a.node.store, join(dir, 'exp'));
  // The seeds plus what this test wrote: records T-1 and A, prefix 88.100.7, one event.
  const seeded = seedCounts();
  const records = seeded.records + 2;
  t.match(exported, {
    format: 'idnode-escrow',
    counts: { records, prefixes: seeded.prefixes + 1, templates: 1, events: seeded.events + 1 },
    templateVersions: ['88.100.7@1'],
  });
  t.equal(exported.auditHead.seq, (await a.call('GET', '/api/audit/verify', { token: ADMIN })).json.checked);
  await t.rejects(exportTo(a.node.store, join(dir, 'exp')), { message: /already holds an export/ });
  const handles = readFileSync(join(dir, 'exp', 'handles.ndjson'), 'utf8')
    .trim()
    .split('\n');
  t.equal(handles.length, records, 'the records also in the bulk import format');
  t.match(JSON.parse(handles[0]!), { handle: String, values: Array });

  const restored = await restoreFrom(join(dir, 'exp'), join(dir, 'b.db'));
  t.equal(restored.checked, exported.auditHead.seq);
  // Like every test node (testConfig): no shedding because this process's own work lags the event loop.
  const b = await createNode(testConfig(t, { db: join(dir, 'b.db') }), { adminToken: 'restored-admin' });
  t.teardown(() => b.close());
  const bc = client(await b.listen());
  for (const id of ['88.100.1/ENGINE-2026-000001', '88.100.2/CALIPER-2026-000500', '88.100.7/T-1', '88.100.1/A', '0.NA/88.100.7', '88.100.7/none']) {
    const [x, y] = await Promise.all([a.call('GET', `/api/handles/${id}`), bc.call('GET', `/api/handles/${id}`)]);
    t.same([y.status, y.text], [x.status, x.text], `${id} answers the same`);
  }
  const lin = '/api/lineage/88.100.4/VIN-LCJ26S70000001?direction=down';
  t.same((await bc.call('GET', lin, { token: 'restored-admin' })).json, (await a.call('GET', lin, { token: ADMIN })).json, 'lineage matches');
  const refs = (await bc.call('GET', '/api/lineage/88.100.7/T-1?direction=down', { token: 'restored-admin' })).json.nodes.length;
  t.equal(refs, 4, 'template reference edges and events came along');
  const hist = '/api/history/88.100.1/A';
  t.same((await bc.call('GET', hist, { token: 'restored-admin' })).json, (await a.call('GET', hist, { token: ADMIN })).json, 'history matches');
  const verify = (await bc.call('GET', '/api/audit/verify', { token: 'restored-admin' })).json;
  t.same(verify, { ok: true, checked: exported.auditHead.seq + 1 }, 'the chain verifies (plus the new admin token entry)');
  t.equal(
    (await bc.call('PUT', '/api/handles/88.100.7/T-1', { token: 'restored-admin', body: [{ index: 1, type: 'URL', data: 'x' }] })).status,
    400,
    'templates are enforced after restore',
  );

  // A changed or incomplete export is refused, and no database is left behind.
  const exp = join(dir, 'exp');
  await t.rejects(restoreFrom(exp, join(dir, 'b.db')), { message: /exists; restore into a new database file/ });
  const original = readFileSync(join(exp, 'records.ndjson'));
  appendFileSync(join(exp, 'records.ndjson'), '{"x":1}\n');
  await t.rejects(restoreFrom(exp, join(dir, 'c.db')), { code: 'IDN_BAD_REQUEST', message: /records.ndjson does not match the manifest/ });
  t.notOk(existsSync(join(dir, 'c.db')));
  writeFileSync(join(exp, 'records.ndjson'), original);
  await t.rejects(restoreFrom(dir, join(dir, 'c.db')), { message: /no manifest.json/ });
  const m = JSON.parse(readFileSync(join(exp, 'manifest.json'), 'utf8'));
  writeFileSync(join(exp, 'manifest.json'), JSON.stringify({ ...m, format: 'other' }));
  await t.rejects(restoreFrom(exp, join(dir, 'c.db')), { message: /not an idnode escrow manifest/ });
  delete m.files['edges.ndjson'];
  writeFileSync(join(exp, 'manifest.json'), JSON.stringify(m));
  await t.rejects(restoreFrom(exp, join(dir, 'c.db')), { message: /lists no edges.ndjson/ });
  m.files['missing.ndjson'] = { table: 'x', rows: 0, bytes: 0, sha256: '' };
  writeFileSync(join(exp, 'manifest.json'), JSON.stringify(m));
  await t.rejects(restoreFrom(exp, join(dir, 'c.db')), { message: /missing.ndjson is listed in the manifest but missing/ });
});

t.test('a restore whose chain does not verify is refused', async (t) => {
  const a = await startNode(t);
  await registrar(a);
  const dir = tempDir(t);
  const m = await exportTo(a.node.store, join(dir, 'exp'));
  const store = openStore(join(dir, 'tampered.db'));
  await store.close();
  // Rewrite one audit row in the export and fix up its checksum: the manifest matches, the chain does not.
  const file = join(dir, 'exp', 'audit_log.ndjson');
  const lines = readFileSync(file, 'utf8').replace('"actor":"system"', '"actor":"mallory"');
  writeFileSync(file, lines);
  const { createHash } = await import('node:crypto');
  m.files['audit_log.ndjson']!.sha256 = createHash('sha256').update(lines).digest('hex');
  m.files['audit_log.ndjson']!.bytes = Buffer.byteLength(lines);
  writeFileSync(join(dir, 'exp', 'manifest.json'), JSON.stringify(m));
  await t.rejects(restoreFrom(join(dir, 'exp'), join(dir, 'r.db')), { message: /restored audit chain does not verify: entry 1/ });
  t.notOk(existsSync(join(dir, 'r.db')));
});

t.test('CLI: import NDJSON and CSV with progress and per-line errors; export; restore', async (t) => {
  const dir = tempDir(t, {
    'c.json': JSON.stringify({ db: 'n.db' }),
    'good.ndjson': `${[1, 2, 3].map((i) => JSON.stringify({ handle: `88.100.7/N-${i}`, values: [{ index: 1, type: 'URL', data: `https://x/${i}` }] })).join('\n')}\n`,
    'bad.ndjson': `${JSON.stringify({ handle: '88.100.7/N-9', values: [{ index: 1, type: 'URL', data: 'x' }] })}\nnope\n`,
    'in.csv': 'handle,batchNo,1:URL\n88.100.7/C-1,B-1,https://x/c1\n"88.100.7/C-2","B-2, ""quoted""",\n88.100.7/C-3,,https://x/c3\n',
    'bad.csv': 'handle,colour\n88.100.7/C-9,red\n',
  });
  const setup = await createNode(loadConfig({ file: join(dir, 'c.json'), overrides: { db: join(dir, 'n.db') }, env: {} }), { adminToken: ADMIN });
  setup.prefixes.create({ prefix: '88.100.7', owner: { name: 'Acme' } }, 'test');
  setup.templates.put('88.100.7', '1', { items: [{ name: 'batchNo', idIndex: 2001, idType: 'batch', dataType: 'string', required: true }] }, 'test');
  await setup.close();
  // The commands name files relative to the directory they run in, as from a shell there.
  const cwd = process.cwd();
  process.chdir(dir);
  t.teardown(() => process.chdir(cwd));
  const cli = async (args: string[]) => {
    const r = await runCli(args);
    return { status: r.code, stdout: r.out, stderr: r.err };
  };

  const good = await cli(['import', 'good.ndjson', '--prefix', '88.100.7', '--config', 'c.json']);
  t.equal(good.status, 1, 'the template applies: lines without it fail');
  t.match(good.stderr, /line 1 88.100.7\/N-1: prefix 88.100.7 uses metadata templates/);
  t.match(good.stderr, /\d+ records \(3 failed\), \d+ records\/s, 100.0 %, ETA 0s/, 'plain progress lines when not on a terminal');
  const csv = await cli(['import', 'in.csv', '--prefix', '88.100.7', '--template', '1', '--config', 'c.json']);
  t.equal(csv.status, 1, csv.stderr);
  t.match(JSON.parse(csv.stdout), { summary: true, total: 3, ok: 2, failed: 1, committedThroughLine: 4 });
  t.match(csv.stderr, /line 4 88.100.7\/C-3: index 2001 \(item "batchNo", template 1\) is required and missing/, 'CSV line numbers');
  t.match(
    (await cli(['import', 'bad.csv', '--prefix', '88.100.7', '--template', '1', '--config', 'c.json'])).stderr,
    /CSV column 2 "colour" is neither "handle", an item of template 1/,
  );
  t.match((await cli(['import', 'bad.ndjson', '--prefix', '88.100.7', '--config', 'c.json', '--format', 'xml'])).stderr, /--format must be ndjson or csv/);
  t.match((await cli(['import', 'none.ndjson', '--prefix', '88.100.7', '--config', 'c.json'])).stderr, /no file none.ndjson/);
  t.match((await cli(['import', 'good.ndjson', '--config', 'c.json'])).stderr, /usage: idnode import/);
  t.match((await cli(['import', 'good.ndjson', '--prefix', '88..7', '--config', 'c.json'])).stderr, /--prefix: /);
  t.match((await cli(['import', 'good.ndjson', '--prefix', '88.100.7', '--overwrite', 'maybe'])).stderr, /--overwrite must be true or false/);

  const exp = await cli(['export', '--db', 'n.db', '--out', 'exp']);
  t.equal(exp.status, 0, exp.stderr);
  t.match(JSON.parse(exp.stdout), { out: 'exp', counts: { records: 2, templates: 1 }, templateVersions: ['88.100.7@1'] });
  t.match((await cli(['export', '--db', 'nothing.db', '--out', 'x'])).stderr, /no database at nothing.db/);
  t.match((await cli(['export', '--db', 'n.db'])).stderr, /usage: idnode export/);
  const res = await cli(['restore', '--from', 'exp', '--db', 'r.db']);
  t.equal(res.status, 0, res.stderr);
  t.match(JSON.parse(res.stdout), { db: 'r.db', counts: { records: 2 }, auditVerified: Number });
  const again = await cli(['restore', '--from', 'exp', '--db', 'r.db']);
  t.equal(again.status, 2);
  t.match(again.stderr, /restore refused: r.db exists/);
  t.match((await cli(['restore', '--from', 'exp'])).stderr, /usage: idnode restore/);
});

/** Every escrowed row of an export, per table, in a stable order (SQLite's rowid of records left out: PostgreSQL has none). */
function exportRows(dir: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const table of ESCROW_TABLES)
    out[table] = readFileSync(join(dir, `${table}.ndjson`), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => {
        const row = JSON.parse(l) as Record<string, unknown>;
        if (table === 'records') delete row.id;
        return JSON.stringify(Object.fromEntries(Object.entries(row).sort(([a], [b]) => (a < b ? -1 : 1))));
      })
      .sort();
  return out;
}

t.test('cross-engine escrow: SQLite → PostgreSQL → SQLite gives the same rows, answers and a verifying chain', async (t) => {
  const pg = await pgCluster(t);
  if (pg === undefined) return;
  const a = await startNode(t, { seed: true });
  const reg = await registrar(a);
  t.equal((await a.call('PUT', '/api/handles/88.100.7/Ü-1', { token: reg, body: [{ index: 1, type: 'DESC', data: 'Ölpumpe 😀 «x»' }] })).status, 200);
  t.equal((await a.call('PUT', '/api/handles/88.100.1/A', { token: ADMIN, body: sampleValues })).status, 200);
  t.equal((await a.call('DELETE', '/api/handles/88.100.1/A?index=3', { token: ADMIN })).status, 200);
  await a.call('POST', '/api/events', {
    token: reg,
    body: { type: 'aggregation', action: 'ADD', parent: '88.100.7/Ü-1', children: ['88.100.7/X'], eventTime: '2026-01-01T00:00:00Z' },
  });
  const dir = tempDir(t);
  const fromSqlite = await exportTo(a.node.store, join(dir, 'sqlite'));

  const url = await pg.createDatabase();
  const intoPg = await restoreFrom(join(dir, 'sqlite'), { engine: 'postgres', url });
  t.equal(intoPg.checked, fromSqlite.auditHead.seq, 'the chain verifies on PostgreSQL');
  await t.rejects(restoreFrom(join(dir, 'sqlite'), { engine: 'postgres', url }), {
    code: 'IDN_BAD_REQUEST',
    message: /is not empty; restore into a new database/,
  });
  const store = await connectStore({ engine: 'postgres', url });
  t.teardown(() => store.close());
  for (const line of readFileSync(join(dir, 'sqlite', 'handles.ndjson'), 'utf8')
    .trim()
    .split('\n')) {
    const key = (JSON.parse(line) as { handle: string }).handle.toLowerCase();
    t.same(await store.answerRow(key), await a.node.store.answerRow(key), `${key}: the same answer row`);
  }
  const fromPg = await exportTo(store, join(dir, 'pg'));
  t.same({ ...fromPg, exportedAt: '', files: {} }, { ...fromSqlite, exportedAt: '', files: {} }, 'the same manifest: counts, templates, audit head');
  t.same(exportRows(join(dir, 'pg')), exportRows(join(dir, 'sqlite')), 'the same rows, byte for byte');

  const back = await restoreFrom(join(dir, 'pg'), join(dir, 'back.db'));
  t.equal(back.checked, fromSqlite.auditHead.seq);
  const b = await createNode(testConfig(t, { db: join(dir, 'back.db') }), { adminToken: 'restored-admin' });
  t.teardown(() => b.close());
  const bc = client(await b.listen());
  for (const id of ['88.100.1/ENGINE-2026-000001', '88.100.7/Ü-1', '88.100.1/A', '0.NA/88.100.7', '88.100.7/none']) {
    const [x, y] = await Promise.all([a.call('GET', `/api/handles/${encodeURI(id)}`), bc.call('GET', `/api/handles/${encodeURI(id)}`)]);
    t.same([y.status, y.text, y.headers.get('etag')], [x.status, x.text, x.headers.get('etag')], `${id} answers the same after the round trip`);
  }
  const hist = '/api/history/88.100.1/A';
  t.same((await bc.call('GET', hist, { token: 'restored-admin' })).json, (await a.call('GET', hist, { token: ADMIN })).json, 'history matches');
  t.same((await bc.call('GET', '/api/audit/verify', { token: 'restored-admin' })).json, { ok: true, checked: fromSqlite.auditHead.seq + 1 });
});
