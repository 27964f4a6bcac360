import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config.js';
import { createNode } from '../src/main.js';
import { exportTo, restoreFrom } from '../src/registry/escrow.js';
import { openStore } from '../src/store/index.js';
import { ADMIN, client, registrar, sampleValues, startNode } from './helpers.js';

const CLI = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('IDNODE_')));
const cli = (args: string[], cwd: string) =>
  spawnSync(process.execPath, [...process.execArgv, CLI, ...args], { cwd, env: cleanEnv, encoding: 'utf8', timeout: 120_000 });

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
  const dir = t.testdir({});
  const exported = await exportTo(a.node.store, join(dir, 'exp'));
  t.match(exported, { format: 'idnode-escrow', counts: { records: 3362, prefixes: 5, templates: 1, events: 521 }, templateVersions: ['88.100.7@1'] });
  t.equal(exported.auditHead.seq, (await a.call('GET', '/api/audit/verify', { token: ADMIN })).json.checked);
  await t.rejects(exportTo(a.node.store, join(dir, 'exp')), { message: /already holds an export/ });
  const handles = readFileSync(join(dir, 'exp', 'handles.ndjson'), 'utf8')
    .trim()
    .split('\n');
  t.equal(handles.length, 3362, 'the records also in the bulk import format');
  t.match(JSON.parse(handles[0]!), { handle: String, values: Array });

  const restored = await restoreFrom(join(dir, 'exp'), join(dir, 'b.db'));
  t.equal(restored.checked, exported.auditHead.seq);
  const b = await createNode(loadConfig({ overrides: { db: join(dir, 'b.db'), listen: { port: 0 } }, env: {} }), { adminToken: 'restored-admin' });
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
  const dir = t.testdir({});
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
  const dir = t.testdir({
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

  const good = cli(['import', 'good.ndjson', '--prefix', '88.100.7', '--config', 'c.json'], dir);
  t.equal(good.status, 1, 'the template applies: lines without it fail');
  t.match(good.stderr, /line 1 88.100.7\/N-1: prefix 88.100.7 uses metadata templates/);
  t.match(good.stderr, /\d+ records \(3 failed\), \d+ records\/s, 100.0 %, ETA 0s/, 'plain progress lines when not on a terminal');
  const csv = cli(['import', 'in.csv', '--prefix', '88.100.7', '--template', '1', '--config', 'c.json'], dir);
  t.equal(csv.status, 1, csv.stderr);
  t.match(JSON.parse(csv.stdout), { summary: true, total: 3, ok: 2, failed: 1, committedThroughLine: 4 });
  t.match(csv.stderr, /line 4 88.100.7\/C-3: index 2001 \(item "batchNo", template 1\) is required and missing/, 'CSV line numbers');
  t.match(
    cli(['import', 'bad.csv', '--prefix', '88.100.7', '--template', '1', '--config', 'c.json'], dir).stderr,
    /CSV column 2 "colour" is neither "handle", an item of template 1/,
  );
  t.match(cli(['import', 'bad.ndjson', '--prefix', '88.100.7', '--config', 'c.json', '--format', 'xml'], dir).stderr, /--format must be ndjson or csv/);
  t.match(cli(['import', 'none.ndjson', '--prefix', '88.100.7', '--config', 'c.json'], dir).stderr, /no file none.ndjson/);
  t.match(cli(['import', 'good.ndjson', '--config', 'c.json'], dir).stderr, /usage: idnode import/);
  t.match(cli(['import', 'good.ndjson', '--prefix', '88..7', '--config', 'c.json'], dir).stderr, /--prefix: /);
  t.match(cli(['import', 'good.ndjson', '--prefix', '88.100.7', '--overwrite', 'maybe'], dir).stderr, /--overwrite must be true or false/);

  const exp = cli(['export', '--db', 'n.db', '--out', 'exp'], dir);
  t.equal(exp.status, 0, exp.stderr);
  t.match(JSON.parse(exp.stdout), { out: 'exp', counts: { records: 2, templates: 1 }, templateVersions: ['88.100.7@1'] });
  t.match(cli(['export', '--db', 'nothing.db', '--out', 'x'], dir).stderr, /no database at nothing.db/);
  t.match(cli(['export', '--db', 'n.db'], dir).stderr, /usage: idnode export/);
  const res = cli(['restore', '--from', 'exp', '--db', 'r.db'], dir);
  t.equal(res.status, 0, res.stderr);
  t.match(JSON.parse(res.stdout), { db: 'r.db', counts: { records: 2 }, auditVerified: Number });
  const again = cli(['restore', '--from', 'exp', '--db', 'r.db'], dir);
  t.equal(again.status, 2);
  t.match(again.stderr, /restore refused: r.db exists/);
  t.match(cli(['restore', '--from', 'exp'], dir).stderr, /usage: idnode restore/);
});
