/**
 * The change feed: a write by any process (the CLI, a second connection, another worker)
 * reaches every other process's caches. Tests wait for the node's follower to reach the
 * feed's head (`node.changes.caughtUp`), never for time to pass.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseIdentifier } from '../src/identifier/index.js';
import type { Store } from '../src/store/index.js';
import { createChangeFollower } from '../src/resolver/index.js';
import { ADMIN, registrar, secondRegistry, startNode, testRecordRow } from './helpers.js';
import { ENGINES, storeOpener } from './pg.js';

const stores = storeOpener(t);

const CLI = fileURLToPath(new URL('../src/cli/bin.ts', import.meta.url));
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('IDNODE_')));

const url = (v: string) => [{ index: 1, type: 'URL', data: v }];

function run(args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, CLI, ...args], { cwd, env: cleanEnv });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

t.test('idnode import into the database of a running node: the node drops what changed and serves the new values', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  t.equal((await c.call('PUT', '/api/handles/88.100.7/ENGINE-1', { token: reg, body: url('https://old.example/1') })).status, 200);
  // Admission stores an answer on its second miss (src/resolver/cache.ts); the third request is a hit.
  for (let i = 0; i < 2; i++) await c.call('GET', '/api/handles/88.100.7/ENGINE-1');
  const warm = await c.call('GET', '/api/handles/88.100.7/ENGINE-1');
  t.equal(warm.headers.get('cache-status'), 'idnode; hit', 'the answer is cached');
  t.equal((await c.call('GET', '/api/handles/88.100.7/ENGINE-2')).status, 404, 'the new identifier is not there yet');
  t.equal((await c.call('GET', '/api/handles/88.100.7/ENGINE-2')).headers.get('cache-status'), 'idnode; fwd=uri-miss; stored', 'its 404 is cached');

  // Beside the node's file (a second t.testdir would wipe the folder the node's database is in).
  const dir = dirname(c.config.db);
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ db: c.config.db }));
  writeFileSync(
    join(dir, 'in.ndjson'),
    [
      JSON.stringify({ handle: '88.100.7/ENGINE-1', values: url('https://new.example/1') }),
      JSON.stringify({ handle: '88.100.7/ENGINE-2', values: url('https://new.example/2') }),
    ].join('\n'),
  );
  const before = c.node.changes.cursor();
  const imported = await run(['import', 'in.ndjson', '--prefix', '88.100.7', '--config', join(dir, 'c.json')], dir);
  t.equal(imported.code, 0, imported.out);

  const head = await c.node.store.changesHead();
  t.ok(head > before, 'the import recorded its changes in the feed');
  await c.node.changes.caughtUp(head);
  const fresh = await c.call('GET', '/api/handles/88.100.7/ENGINE-1');
  t.equal(fresh.status, 200);
  t.not(fresh.headers.get('cache-status'), 'idnode; hit', 'not the stale cached answer');
  t.equal(fresh.json.values[0].data.value, 'https://new.example/1', 'the imported values');
  const added = await c.call('GET', '/api/handles/88.100.7/ENGINE-2');
  t.equal(added.status, 200, 'the imported identifier resolves (its cached 404 was dropped)');
  t.equal(added.json.values[0].data.value, 'https://new.example/2');
});

t.test('a second connection in this process: prefix and template changes reach the node', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  const other = await secondRegistry(t, c.config);

  // A prefix handle answer, cached, then the prefix suspended through the other connection.
  for (let i = 0; i < 2; i++) await c.call('GET', '/api/handles/0.NA/88.100.7');
  t.equal((await c.call('GET', '/api/handles/0.NA/88.100.7')).headers.get('cache-status'), 'idnode; hit');
  // An empty prefix, then delegated elsewhere through the other connection: its routing changes.
  t.equal((await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.9', owner: { name: 'Nine' } } })).status, 201);
  t.equal(c.node.router.route('88.100.9').kind, 'local');
  t.equal((await c.call('GET', '/api/handles/88.100.9/Y')).status, 404, 'a miss under it is answered here (the fast path notes the prefix homed here)');
  await other.prefixes.patch('88.100.7', { status: 'suspended' }, 'test');
  await other.prefixes.patch('88.100.9', { site: 'http://127.0.0.1:9' }, 'test');
  await c.node.changes.caughtUp(await other.store.changesHead());
  const handle = await c.call('GET', '/api/handles/0.NA/88.100.7');
  t.not(handle.headers.get('cache-status'), 'idnode; hit', 'the prefix handle was dropped');
  t.equal(handle.json.values.find((v: any) => v.type === 'HS_STATUS').data.value, 'suspended');
  t.match(c.node.router.route('88.100.9'), { kind: 'delegated', site: 'http://127.0.0.1:9' }, 'routing reloaded');
  const moved = await c.call('GET', '/api/handles/88.100.9/Y');
  t.match(moved.json, { code: /^IDN_UPSTREAM_/ }, 'a miss under it now goes to its new site (nothing listens there)');
  const refused = await c.call('PUT', '/api/handles/88.100.7/X', { token: reg, body: url('https://x.example') });
  t.match(refused.json, { code: 'IDN_PREFIX_NOT_ACTIVE' }, 'the write guard sees the suspension');
  await other.prefixes.patch('88.100.7', { status: 'active' }, 'test');

  // A template put through the other connection applies to the node's next write.
  await other.templates.put('88.100.7', '1.0', { items: [{ name: 'batchNo', idIndex: 2001, idType: 'batch', dataType: 'string', required: true }] }, 'test');
  await c.node.changes.caughtUp(await other.store.changesHead());
  t.same(
    c.node.templates.list('88.100.7').map((x) => x.version),
    ['1.0'],
    'templates reloaded',
  );
  const bad = await c.call('PUT', '/api/handles/88.100.7/X', { token: reg, body: url('https://x.example') });
  t.match(bad.json, { code: 'IDN_INVALID_VALUE', message: /uses metadata templates/ }, 'the new template is enforced');
  const good = await c.call('PUT', '/api/handles/88.100.7/X', {
    token: reg,
    body: [...url('https://x.example'), { index: 1001, type: 'TEMPLATE', data: '1.0' }, { index: 2001, type: 'batch', data: 'B-1' }],
  });
  t.equal(good.status, 200, good.text);
  // The node's write marked 1.0 used; the other connection learns it from the feed and refuses to change it.
  await other.changes.caughtUp(await c.node.store.changesHead());
  await t.rejects(other.templates.put('88.100.7', '1.0', { items: [{ name: 'batchNo', idIndex: 2001, idType: 'batch', dataType: 'string' }] }, 'test'), {
    code: 'IDN_TEMPLATE_IN_USE',
  });

  // Own writes apply at once: a PUT and then a GET on the same node never see the old answer.
  for (let i = 0; i < 2; i++) await c.call('GET', '/api/handles/88.100.7/X');
  t.equal((await c.call('GET', '/api/handles/88.100.7/X')).headers.get('cache-status'), 'idnode; hit');
  const cursor = c.node.changes.cursor();
  await c.call('PUT', '/api/handles/88.100.7/X?index=2001', { token: reg, body: [{ index: 2001, type: 'batch', data: 'B-2' }] });
  t.ok(c.node.changes.cursor() > cursor, 'the follower applied the write before the PUT answered');
  t.match((await c.call('GET', '/api/handles/88.100.7/X')).text, /B-2/);
});

t.test('the feed is bounded: a follower behind the pruned window drops its whole cache', async (t) => {
  const c = await startNode(t, { changes: { retention: 5 } });
  const reg = await registrar(c);
  for (const h of ['A', 'B', 'C']) await c.call('PUT', `/api/handles/88.100.7/${h}`, { token: reg, body: url(`https://x.example/${h}`) });
  for (const h of ['A', 'B', 'C', 'A', 'B', 'C']) await c.call('GET', `/api/handles/88.100.7/${h}`);
  t.equal(c.node.resolver.stats().entries, 3);
  t.equal((await c.call('GET', '/api/handles/88.100.7/C')).headers.get('cache-status'), 'idnode; hit');

  // Ten writes in one go on another connection: they settle in microtasks, so the node's timer cannot run between them.
  const other = await secondRegistry(t, c.config);
  for (let i = 0; i < 10; i++) await other.records.put(parseIdentifier(`88.100.7/N-${i}`), url(`https://n.example/${i}`), { overwrite: true }, 'test');
  const kept = await other.store.changesAfter(0, 100);
  t.equal(kept.length, 5, 'only the newest rows are kept');
  t.ok(kept[0]!.id > c.node.changes.cursor() + 1, 'the node has not seen rows that are gone');
  await c.node.changes.caughtUp(await other.store.changesHead());
  t.equal(c.node.resolver.stats().entries, 0, 'the whole cache was dropped');
  t.not((await c.call('GET', '/api/handles/88.100.7/C')).headers.get('cache-status'), 'idnode; hit', 'an untouched answer is read again');
  t.equal((await c.call('GET', '/api/handles/88.100.7/N-9')).status, 200);
});

for (const engine of ENGINES)
  t.test(`${engine}: every write records its changes with its audit entry; history off keeps a cursor of its own`, async (t) => {
    for (const history of [true, false]) {
      const s = await stores.open(t, engine, { history });
      if (s === undefined) return;
      let commits = 0;
      s.onCommit(() => void commits++);
      await s.write({ actor: 't', action: 'record.create', target: 'x' }, async (tx) => {
        await tx.putRecord({
          handleKey: '88.1/a',
          handle: '88.1/A',
          prefixKey: '88.1',
          valuesJson: '[]',
          publicJson: null,
          maxAge: 0,
          expiresAt: null,
          etag: '"e"',
        });
        tx.changed('record', '88.1/a');
        await tx.putPrefix({
          prefixKey: '88.1',
          prefix: '88.1',
          parentKey: '88',
          ownerJson: '{}',
          site: null,
          status: 'active',
          createdAt: tx.at,
          updatedAt: tx.at,
        });
        return { result: undefined, payload: 'x' };
      });
      await s.write({ actor: 't', action: 'token.create', target: 'tok' }, async (tx) => {
        await tx.insertToken({ id: 'tok', role: 'admin', prefixesJson: '[]', secretHash: 'h', label: null, createdAt: tx.at, revokedAt: null });
        await tx.putTemplate({ prefixKey: '88.1', version: '1', prefix: '88.1', bodyJson: '{}', used: 0, createdAt: tx.at, updatedAt: tx.at });
        return { result: undefined, payload: 'y' };
      });
      await t.rejects(
        s.write({ actor: 't', action: 'x', target: 'x' }, async (tx) => {
          await tx.deleteRecord('88.1/a', '88.1/A');
          throw new Error('rolled back');
        }),
      );
      await s.write({ actor: 't', action: 'nothing', target: 'x' }, async () => ({ result: undefined, payload: null }));
      const seq = history ? [1, 1, 2, 2] : [null, null, null, null];
      t.same(
        await s.changesAfter(0, 10),
        [
          { id: 1, auditSeq: seq[0], kind: 'record', key: '88.1/a' },
          { id: 2, auditSeq: seq[1], kind: 'prefix', key: '88.1' },
          { id: 3, auditSeq: seq[2], kind: 'token', key: 'tok' },
          { id: 4, auditSeq: seq[3], kind: 'template', key: '88.1@1' },
        ],
        `one row per kind and key, in write order (history ${history})`,
      );
      t.equal(await s.changesHead(), 4, 'a rolled-back write leaves no row and no gap');
      t.equal(commits, 2, 'own-commit listeners run only for writes that changed something');
    }
  });

t.test('cross-process visibility latency: 200 writes through a second connection (reported, not asserted)', async (t) => {
  const c = await startNode(t);
  await registrar(c);
  const other = await secondRegistry(t, c.config);
  const ms: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    await other.records.put(parseIdentifier(`88.100.7/L-${i % 20}`), url(`https://l.example/${i}`), { overwrite: true }, 'bench');
    await c.node.changes.caughtUp(await other.store.changesHead());
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  const pct = (p: number) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))]!.toFixed(1);
  t.comment(`write → applied by the node's follower (changes.pollMs ${c.config.changes.pollMs}): p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, max ${pct(1)} ms`);
  t.equal(ms.length, 200);
  t.equal(c.node.changes.cursor(), await other.store.changesHead(), 'the node applied every write');
});

const put = (s: Store, key: string, values: string) =>
  s.write({ actor: 't', action: 'record.update', target: key }, async (tx) => {
    await tx.putRecord(testRecordRow(key, values));
    return { result: undefined, payload: values };
  });

for (const engine of ENGINES)
  t.test(`${engine}: the feed is pruned to its retention; the head stays and ids are never reused`, async (t) => {
    const s = await stores.open(t, engine, { changesRetention: 3 });
    if (s === undefined) return;
    for (let i = 0; i < 7; i++) await put(s, `88.1/k${i}`, `[${i}]`);
    t.same(
      (await s.changesAfter(0, 100)).map((c) => [c.id, c.key]),
      [
        [5, '88.1/k4'],
        [6, '88.1/k5'],
        [7, '88.1/k6'],
      ],
    );
    t.equal(await s.changesHead(), 7);
    t.same(
      (await s.changesAfter(5, 1)).map((c) => c.id),
      [6],
      'paged by cursor',
    );
  });

t.test('postgres: a follower on one engine applies what another engine (another process) commits', async (t) => {
  const a = await stores.open(t, 'postgres');
  if (a === undefined) return;
  const b = (await stores.open(t, 'postgres', { url: a.path }))!;
  const seen: string[] = [];
  let resets = 0;
  const follower = await createChangeFollower({
    store: a,
    pollMs: 5,
    pageSize: 4,
    apply: (rows) => void seen.push(...rows.map((r) => r.key)),
    reset: () => void resets++,
  });
  t.teardown(() => follower.stop());
  const before = await a.dataVersion();
  await Promise.all(Array.from({ length: 10 }, (_, i) => put(b, `88.1/x${i}`, '[]')));
  t.not(await a.dataVersion(), before, "another engine's commit moves the data version");
  await follower.caughtUp(await b.changesHead());
  t.same(seen.sort(), Array.from({ length: 10 }, (_, i) => `88.1/x${i}`).sort(), 'every change, read in pages, none twice');
  t.equal(resets, 0);
  await put(a, '88.1/own', '[]');
  t.equal(follower.cursor(), 11, "the engine's own commit is applied before its write returns");
});
