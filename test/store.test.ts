import t from 'tap';
import { join } from 'node:path';
import { readdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { IdnError } from '../src/errors.js';
import {
  auditHash,
  connectStore,
  type EscrowTable,
  GENESIS_HASH,
  latestPgSchemaVersion,
  latestSchemaVersion,
  openStore,
  type StoreEngine,
  versionLine,
  type WriteTx,
} from '../src/store/index.js';
import { attacker, tamper, tamperPg, writeOldDatabase, writeV1Database } from './tamper.js';
import { tempDir, testRecordRow } from './helpers.js';
import { ENGINES, storeOpener } from './pg.js';
import { createBulk } from '../src/registry/bulk.js';
import { createTemplates } from '../src/registry/templates.js';

const stores = storeOpener(t);

t.test('opens in WAL, applies migrations once, keeps data across reopen', async (t) => {
  const path = join(tempDir(t), 'sub', 'a.db');
  const s = openStore(path);
  const file = tamper(path);
  t.equal(file.journalMode(), 'wal');
  file.close();
  t.equal(s.schemaVersion, 9);
  t.equal(latestSchemaVersion(), 9);
  await s.write({ actor: 'test', action: 'record.create', target: '88.1/a' }, async (tx) => {
    await tx.putRecord({
      handleKey: '88.1/a',
      handle: '88.1/A',
      prefixKey: '88.1',
      valuesJson: '[]',
      publicJson: null,
      maxAge: null,
      expiresAt: null,
      etag: null,
    });
    return { result: undefined, payload: 'x' };
  });
  await s.close();
  const again = openStore(path);
  t.equal(again.schemaVersion, 9);
  t.equal((await again.getRecord('88.1/a'))?.handle, '88.1/A');
  t.equal((await again.getRecord('88.1/a'))?.version, 1);
  await again.close();
  const ro = openStore(path, { readonly: true });
  t.equal(await ro.totalRecords(), 1);
  await ro.close();
});

t.test('sqlite: whole-index reads see every committed row and leave no connection open', async (t) => {
  const s = openStore(join(tempDir(t), 'scan.db'));
  t.teardown(() => s.close());
  const keys = Array.from({ length: 2500 }, (_, i) => `88.1/k-${String(i).padStart(5, '0')}`);
  await s.write({ actor: 'test', action: 'record.create', target: '88.1/*' }, async (tx) => {
    for (const k of keys) await tx.putRecord(testRecordRow(k, '[]'));
    return { result: undefined, payload: 'x' };
  });
  const fds = () => readdirSync('/proc/self/fd').length;
  t.equal(await s.totalRecords(), 2500);
  // Pages of 1,000 read on a connection of their own (src/store/sqlite/engine.ts), closed after each.
  const read: string[] = [];
  for (let after = ''; ;) {
    const page = await s.recordKeysAfter(after, 1000);
    read.push(...page);
    if (page.length < 1000) break;
    after = page[page.length - 1]!;
    if (read.length === 1000) {
      // A row committed between two pages is in the next one.
      await s.write({ actor: 'test', action: 'record.create', target: '88.1/z' }, async (tx) => {
        await tx.putRecord(testRecordRow('88.1/z', '[]'));
        return { result: undefined, payload: 'x' };
      });
    }
  }
  t.same(read, [...keys, '88.1/z'], 'every key, in order, and the one written meanwhile');
  t.same(await s.recordKeysAfter('', 1), [keys[0]], 'a short page');
  // SQLite keeps a closed connection's descriptor for the next open of the file (closing it would drop the process's locks): no more than that.
  const open = fds();
  for (let i = 0; i < 20; i++) t.equal((await s.recordKeysAfter('', 1000)).length, 1000);
  t.equal(await s.totalRecords(), 2501);
  t.equal(fds(), open, 'twenty more scans leave no more descriptors open');
});

t.test('SQLite as `npm ci` builds it maps a database file past 2 GiB (scripts/sqlite-mmap.mjs)', async (t) => {
  const path = join(tempDir(t), 'a.db');
  const s = openStore(path);
  await s.close();
  const file = tamper(path);
  t.teardown(() => file.close());
  // Without the rebuild, SQLite grants 2 GiB − 64 KiB whatever is asked.
  t.equal(file.mapBytes(64 * 1024 ** 3), 64 * 1024 ** 3, 'the default sqlite.mmapBytes is granted whole');
  t.equal(file.mapBytes(256 * 1024 ** 3), 256 * 1024 ** 3);
  t.equal(file.mapBytes(512 * 1024 ** 3), 256 * 1024 ** 3, 'the cap the build sets');
});

t.test('a v1 database migrates to the latest with its data; read-only refuses an old schema', async (t) => {
  const path = join(tempDir(t), 'old.db');
  writeV1Database(path, readFileSync(new URL('../schema/001_init.sql', import.meta.url), 'utf8'));
  t.throws(() => openStore(path, { readonly: true }), { code: 'IDN_INTERNAL', message: /schema v1, older than this idnode's v9; start a node on it once/ });
  const s = openStore(path);
  t.equal(s.schemaVersion, 9);
  t.equal((await s.getRecord('88.1/a'))?.handle, '88.1/A');
  // Its rows predate write sets: the migration re-bases them in one entry (schema v8).
  t.same(await s.verifyAudit(), { ok: true, checked: 1 });
  t.match(await s.auditPage(0, 10), [{ seq: 1, actor: 'system', action: 'audit.rebase', target: 'records', rowsDigest: /^[0-9a-f]{64}$/ }]);
  await s.close();
});

const sha256Hex = (text: string) => createHash('sha256').update(text).digest('hex');

t.test('a v6 log is re-based on its first writable open: later edits of any row it held are found', async (t) => {
  const path = join(tempDir(t), 'v6.db');
  const schemas = ['001_init', '002_lineage', '003_sync', '004_templates', '005_answer_meta', '006_changes'].map((f) =>
    readFileSync(new URL(`../schema/${f}.sql`, import.meta.url), 'utf8'),
  );
  const old = writeOldDatabase(path, schemas, 6);
  const token = { id: 'tok_a', role: 'registrar', prefixes_json: '["88.1"]', secret_hash: 'a'.repeat(64), label: null, created_at: 'x', revoked_at: null };
  old.insertRow('tokens', token);
  const payload = JSON.stringify(token);
  const base = { seq: 1, at: '2026-01-01T00:00:00Z', actor: 'cli', action: 'token.create', target: 'tok_a', digest: sha256Hex(payload) };
  old.insertRow('audit_log', { ...base, prev_hash: GENESIS_HASH, hash: auditHash(GENESIS_HASH, base) });
  old.insertRow('audit_payloads', { seq: 1, payload });
  old.close();

  const s = openStore(path);
  t.teardown(() => s.close());
  const log = await s.auditPage(0, 10);
  t.match(log[0], { seq: 1, action: 'token.create', rowsDigest: null }, 'the old entry is kept as it was');
  t.match(log.slice(1), [
    { action: 'audit.rebase', actor: 'system', target: 'tokens' },
    { action: 'audit.rebase', target: 'audit_payloads' },
  ]);
  t.same(await s.verifyAudit(), { ok: true, checked: 3 });
  const file = tamper(path);
  t.teardown(() => file.close());
  file.updateRows('tokens', { role: 'admin' }, { id: 'tok_a' });
  t.match(await s.verifyAudit(), { ok: false, firstBroken: { seq: 2, table: 'tokens', key: '["tok_a"]', reason: /altered/ } });
  file.updateRows('tokens', { role: 'registrar' }, { id: 'tok_a' });
  file.deleteRows('audit_payloads', { seq: 1 });
  t.match(await s.verifyAudit(), { ok: false, firstBroken: { table: 'audit_payloads', reason: /missing: it was deleted/ } });
  file.insertRow('audit_payloads', { seq: 1, payload });
  t.same(await s.verifyAudit(), { ok: true, checked: 3 }, 'put back');
  await s.close();
  const again = openStore(path);
  t.equal((await again.auditHead()).seq, 3, 'a covered log is not re-based again');
  await again.close();
});

for (const engine of ENGINES)
  t.test(`${engine}: one write path: version rows and a hash-chained audit entry per write, rollback on error`, async (t) => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const s = await stores.open(t, engine, { now: () => new Date(now) });
    if (s === undefined) return;
    const put = (values: string) =>
      s.write({ actor: 'tok_1', action: 'record.update', target: '88.1/a' }, async (tx) => {
        const v = await tx.putRecord({
          handleKey: '88.1/a',
          handle: '88.1/a',
          prefixKey: '88.1',
          valuesJson: values,
          publicJson: null,
          maxAge: null,
          expiresAt: null,
          etag: null,
        });
        return { result: v, payload: values };
      });
    t.equal(await put('[1]'), 1);
    now += 1000;
    t.equal(await put('[2]'), 2);
    const deleted = await s.write({ actor: 'tok_1', action: 'record.delete', target: '88.1/a' }, async (tx) => ({
      result: await tx.deleteRecord('88.1/a', '88.1/a'),
      payload: '',
    }));
    t.equal(deleted, 3);
    t.equal(await s.getRecord('88.1/a'), undefined);
    t.equal(await put('[4]'), 4, 'versions continue after a delete');
    await t.rejects(
      s.write({ actor: 'x', action: 'y', target: 'z' }, async (tx) => {
        await tx.putRecord({
          handleKey: '88.1/b',
          handle: '88.1/b',
          prefixKey: '88.1',
          valuesJson: '[]',
          publicJson: null,
          maxAge: null,
          expiresAt: null,
          etag: null,
        });
        throw new Error('boom');
      }),
      { code: 'IDN_INTERNAL' },
    );
    t.equal(await s.getRecord('88.1/b'), undefined, 'rolled back');
    t.equal(await s.write({ actor: 'x', action: 'noop', target: 'z' }, async () => ({ result: 7, payload: null })), 7, 'payload null writes no audit entry');

    const versions = (await s.versions('88.1/a', 0, 100)).map((v) => ({
      version: v.version,
      actor: v.actor,
      action: v.action,
      v: v.valuesJson,
      seq: v.auditSeq,
    }));
    t.same(versions, [
      { version: 1, actor: 'tok_1', action: 'record.update', v: '[1]', seq: 1 },
      { version: 2, actor: 'tok_1', action: 'record.update', v: '[2]', seq: 2 },
      { version: 3, actor: 'tok_1', action: 'record.delete', v: null, seq: 3 },
      { version: 4, actor: 'tok_1', action: 'record.update', v: '[4]', seq: 4 },
    ]);
    const log = await s.auditPage(0, 100);
    t.same(await s.versions('88.1/b', 0, 100), [], 'the rolled-back write left no version');
    t.equal(log.length, 4);
    let prev = GENESIS_HASH;
    for (const e of log) {
      t.equal(e.prevHash, prev, `entry ${e.seq} links to the previous hash`);
      t.equal(e.hash, auditHash(prev, e as any), `entry ${e.seq} hash recomputes`);
      prev = e.hash;
    }
    t.equal(log[1]!.at, '2026-01-01T00:00:01Z');
  });

t.test('a database that cannot be opened is a clear error', async (t) => {
  t.throws(() => openStore(join(tempDir(t), 'missing.db'), { readonly: true }), { code: 'IDN_INTERNAL', message: /cannot open database/ });
});

for (const engine of ENGINES)
  t.test(`${engine}: verify covers record versions of any action: a kept payload must start with them; a legacy seed without one is let through`, async (t) => {
    const s = await stores.open(t, engine);
    if (s === undefined) return;
    // Written as the seed writes: versions' lines in key order, then the rest.
    await s.write({ actor: 'seed', action: 'seed', target: 'dir' }, async (tx) => {
      await tx.putRecord(testRecordRow('88.1/b', '[2]'));
      await tx.putRecord(testRecordRow('88.1/a', '[1]'));
      return { result: undefined, payload: `${versionLine('88.1/A', '[1]')}\n${versionLine('88.1/B', '[2]')}\nrest`, keepPayload: true };
    });
    t.same(await s.verifyAudit(), { ok: true, checked: 1 });
    const file = attacker(s.path);
    t.teardown(() => file.close());
    await file.setVersionValues(1, '[3]', '88.1/b');
    t.match(await s.verifyAudit(), { ok: false, firstBroken: { seq: 1, reason: /do not match its payload/ } });
    await file.setVersionValues(1, '[2]', '88.1/b');

    // A seed from before schema v6 kept no payload: nothing to check its versions against.
    await s.write({ actor: 'seed', action: 'seed', target: 'old' }, async (tx) => {
      await tx.putRecord(testRecordRow('88.1/c', '[1]'));
      return { result: undefined, payload: 'old seed files' };
    });
    t.same(await s.verifyAudit(), { ok: true, checked: 2 });
    // Any other action that writes versions must cover them.
    await s.write({ actor: 'x', action: 'import.legacy', target: 'x' }, async (tx) => {
      await tx.putRecord(testRecordRow('88.1/d', '[1]'));
      return { result: undefined, payload: 'no versions here' };
    });
    t.match(await s.verifyAudit(), { ok: false, firstBroken: { seq: 3, reason: /wrote record versions its digest does not cover/ } });
  });

for (const engine of ENGINES)
  t.test(`${engine}: a read while a write is open sees only committed rows; writes run one at a time`, async (t) => {
    const s = await stores.open(t, engine);
    if (s === undefined) return;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const order: string[] = [];
    const first = s.write({ actor: 'x', action: 'record.create', target: '88.1/a' }, async (tx) => {
      await tx.putRecord(testRecordRow('88.1/a', '[1]'));
      t.equal((await tx.getRecord('88.1/a'))?.valuesJson, '[1]', 'the write sees its own row');
      entered();
      await gate;
      order.push('first');
      return { result: 'first', payload: versionLine('88.1/A', '[1]') };
    });
    const second = s.write({ actor: 'x', action: 'record.create', target: '88.1/b' }, async (tx) => {
      order.push('second');
      t.equal((await tx.getRecord('88.1/a'))?.valuesJson, '[1]', 'the next write starts after the first committed');
      await tx.putRecord(testRecordRow('88.1/b', '[2]'));
      return { result: 'second', payload: versionLine('88.1/B', '[2]') };
    });
    await inside;
    t.equal(await s.getRecord('88.1/a'), undefined, 'not visible to reads before the commit');
    t.equal(s.answerRowSync?.('88.1/a'), undefined, 'nor to the synchronous cache-miss read');
    release();
    t.same(await Promise.all([first, second]), ['first', 'second']);
    t.same(order, ['first', 'second']);
    t.equal((await s.getRecord('88.1/a'))?.valuesJson, '[1]');
    if (s.answerRowSync !== undefined) t.same(s.answerRowSync('88.1/b')?.slice(0, 2), ['88.1/B', '[2]']);
    t.same((await s.answerRow('88.1/b'))?.slice(0, 2), ['88.1/B', '[2]']);
    t.equal(await s.answerRow('88.1/zz'), undefined);
    t.same(
      (await s.auditPage(0, 10)).map((e) => e.target),
      ['88.1/a', '88.1/b'],
      'one audit entry each, in commit order',
    );

    // A write that fails after an await rolls back, and the queue goes on.
    let opened!: () => void;
    const during = new Promise<void>((r) => (opened = r));
    let fail!: (err: Error) => void;
    const failing = s.write({ actor: 'x', action: 'record.create', target: '88.1/a' }, async (tx) => {
      await tx.putRecord(testRecordRow('88.1/a', '[9]'));
      opened();
      await new Promise<void>((_r, reject) => (fail = reject));
      return { result: undefined, payload: 'never' };
    });
    const after = s.write({ actor: 'x', action: 'record.create', target: '88.1/c' }, async (tx) => {
      await tx.putRecord(testRecordRow('88.1/c', '[3]'));
      return { result: 'after', payload: versionLine('88.1/C', '[3]') };
    });
    await during;
    t.equal((await s.getRecord('88.1/a'))?.valuesJson, '[1]', 'the open write is invisible');
    fail(new Error('boom'));
    await t.rejects(failing, { code: 'IDN_INTERNAL' });
    t.equal(await after, 'after');
    t.equal((await s.getRecord('88.1/a'))?.valuesJson, '[1]', 'rolled back');
    t.equal((await s.versions('88.1/a', 0, 10)).length, 1, 'no version from the failed write');
    t.same(await s.verifyAudit(), { ok: true, checked: 3 });
  });

for (const engine of ENGINES)
  t.test(`${engine}: close waits for queued writes`, async (t) => {
    const s = await stores.open(t, engine);
    if (s === undefined) return;
    const written = s.write({ actor: 'x', action: 'record.create', target: '88.1/a' }, async (tx) => {
      await tx.putRecord(testRecordRow('88.1/a', '[1]'));
      return { result: 1, payload: 'a' };
    });
    await s.close();
    t.equal(await written, 1);
    t.notOk(s.isOpen());
    await t.rejects(s.getRecord('88.1/a'), 'reads after close fail');
  });

/** A record row of prefix `prefixKey` (answer metadata set, as writes since v5 store it). */
const rowUnder = (prefixKey: string, key: string, values: string) => ({ ...testRecordRow(key, values), prefixKey });

/** Writes `values` to `key` as the registry's PUT does (one version line as the digest). */
const putRecord = (s: StoreEngine, key: string, values: string, prefixKey = '88.1', actor = 'tok_1') =>
  s.write({ actor, action: 'record.update', target: key }, async (tx) => {
    const version = await tx.putRecord(rowUnder(prefixKey, key, values));
    return { result: { version, seq: tx.seq }, payload: versionLine(key.toUpperCase(), values) };
  });
const deleteRecord = (s: StoreEngine, key: string) =>
  s.write({ actor: 'tok_1', action: 'record.delete', target: key }, async (tx) => {
    const version = await tx.deleteRecord(key, key.toUpperCase());
    return { result: version, payload: versionLine(key.toUpperCase(), null) };
  });

for (const engine of ENGINES)
  t.test(`${engine}: values are stored once: the current version's row holds a marker, an older one its values`, async (t) => {
    const c = engine === 'postgres' ? await stores.cluster() : undefined;
    if (engine === 'postgres' && c === undefined) return;
    const where = engine === 'sqlite' ? { path: join(tempDir(t), 'a.db') } : { url: await c!.createDatabase() };
    let s = (await stores.open(t, engine, where))!;
    const raw = engine === 'sqlite' ? tamper(where.path!) : tamperPg(where.url!);
    t.teardown(() => raw.close());
    const stored = async (key: string) =>
      ((await raw.rows('record_versions', { handle_key: key })) as Array<Record<string, unknown>>)
        .map((r) => [Number(r.version), r.values_json])
        .sort((a, b) => (a[0] as number) - (b[0] as number));
    await putRecord(s, '88.1/a', '[1]');
    t.same(await stored('88.1/a'), [[1, '']], 'a new record: its version row holds no copy');
    await putRecord(s, '88.1/a', '[2]');
    t.same(
      await stored('88.1/a'),
      [
        [1, '[1]'],
        [2, ''],
      ],
      'an update puts the old values into the old version first',
    );
    await deleteRecord(s, '88.1/a');
    t.same(
      await stored('88.1/a'),
      [
        [1, '[1]'],
        [2, '[2]'],
        [3, null],
      ],
      'a delete too; the deletion is NULL',
    );
    await putRecord(s, '88.1/a', '[4]');
    t.same(await stored('88.1/a'), [
      [1, '[1]'],
      [2, '[2]'],
      [3, null],
      [4, ''],
    ]);
    // One write that puts a key twice: only its last version is the current one.
    await s.write({ actor: 'tok_1', action: 'bulk.chunk', target: '88.1/b' }, async (tx) => {
      await tx.putRecord(testRecordRow('88.1/b', '["x"]'));
      await tx.putRecord(testRecordRow('88.1/b', '["y"]'));
      return { result: undefined, payload: `${versionLine('88.1/B', '["x"]')}\n${versionLine('88.1/B', '["y"]')}` };
    });
    t.same(await stored('88.1/b'), [
      [1, '["x"]'],
      [2, ''],
    ]);
    const values = async (key: string) => (await s.versions(key, 0, 10)).map((v) => v.valuesJson);
    t.same(await values('88.1/a'), ['[1]', '[2]', null, '[4]'], 'history reads see every version with its values');
    t.same(await values('88.1/b'), ['["x"]', '["y"]']);
    t.equal((await s.versionAsOf('88.1/b', '9999'))?.valuesJson, '["y"]', 'as-of reads too');
    const entries = (await s.auditPage(0, 100)).length;
    t.same(await s.verifyAudit(), { ok: true, checked: entries }, 'every row hashes as it did when stored twice');

    // The current values live in one place: editing them breaks the record and its current version alike.
    await raw.updateRows('records', { values_json: '[5]' }, { handle_key: '88.1/a' });
    t.match(
      await s.verifyAudit(),
      { ok: false, firstBroken: { seq: 4, reason: /record version this entry wrote does not match its digest/ } },
      'an edited current value is found',
    );
    t.equal((await s.versions('88.1/a', 3, 10))[0]?.valuesJson, '[5]');
    await raw.updateRows('records', { values_json: '[4]' }, { handle_key: '88.1/a' });
    // A version row cut loose from its record (its marker names values nobody holds) is found too.
    await raw.updateRows('record_versions', { values_json: '' }, { handle_key: '88.1/a', version: 2 });
    t.match(await s.verifyAudit(), { ok: false, firstBroken: { seq: 2, reason: /record version this entry wrote does not match its digest/ } });
    await raw.updateRows('record_versions', { values_json: '[2]' }, { handle_key: '88.1/a', version: 2 });
    t.same(await s.verifyAudit(), { ok: true, checked: entries }, 'put back');

    // An escrow export carries every version with its values (as before v9); a restore stores them once again.
    const snap: Record<string, Array<Record<string, unknown>>> = {};
    await s.snapshot((table, row) => void (snap[table] ??= []).push(row));
    t.same(
      snap.record_versions!.filter((r) => r.handle_key === '88.1/a').map((r) => r.values_json),
      ['[1]', '[2]', null, '[4]'],
      'the export resolves the current version',
    );
    const where2 = engine === 'sqlite' ? { path: join(tempDir(t), 'b.db') } : { url: await c!.createDatabase() };
    const s2 = (await stores.open(t, engine, where2))!;
    const raw2 = engine === 'sqlite' ? tamper(where2.path!) : tamperPg(where2.url!);
    t.teardown(() => raw2.close());
    await s2.insertRows('records', snap.records!);
    await s2.insertRows('record_versions', snap.record_versions!);
    const stored2 = ((await raw2.rows('record_versions', { handle_key: '88.1/a' })) as Array<Record<string, unknown>>).map((r) => r.values_json);
    t.same(stored2.sort(), ['', '[1]', '[2]', null].sort(), 'the restore left the current version as a marker');
    t.same(
      (await s2.versions('88.1/a', 0, 10)).map((v) => v.valuesJson),
      ['[1]', '[2]', null, '[4]'],
    );

    // A database written before: every version stored with its values. The migration rewrites the current ones.
    await s.close();
    for (const [key, v, json] of [
      ['88.1/a', 4, '[4]'],
      ['88.1/b', 2, '["y"]'],
    ] as const)
      await raw.updateRows('record_versions', { values_json: json }, { handle_key: key, version: v });
    if (engine === 'sqlite') (raw as ReturnType<typeof tamper>).setUserVersion(8);
    else await raw.deleteRows('idnode_schema', { version: 4 });
    s = (await stores.open(t, engine, where))!;
    t.equal(s.schemaVersion, latestSchemaVersion());
    t.same(
      await stored('88.1/a'),
      [
        [1, '[1]'],
        [2, '[2]'],
        [3, null],
        [4, ''],
      ],
      'migrated: the current version holds the marker',
    );
    t.same(await stored('88.1/b'), [
      [1, '["x"]'],
      [2, ''],
    ]);
    t.same(await values('88.1/a'), ['[1]', '[2]', null, '[4]']);
    t.same(await s.verifyAudit(), { ok: true, checked: entries });
  });

for (const engine of ENGINES)
  t.test(`${engine}: records: versions, as-of reads, listing in key order, counters under prefixes`, async (t) => {
    let now = Date.parse('2026-03-01T10:00:00Z');
    const s = await stores.open(t, engine, { now: () => new Date(now) });
    if (s === undefined) return;
    await putRecord(s, '88.1/b', '[1]');
    now += 60_000;
    await putRecord(s, '88.1/b', '[2]');
    await putRecord(s, '88.1/a', '[1]');
    await putRecord(s, '88.1.2/x', '[1]', '88.1.2');
    await putRecord(s, '88.10/y', '[1]', '88.10');
    await putRecord(s, '88.1/c', '[1]');
    await deleteRecord(s, '88.1/c');
    t.equal((await s.getRecord('88.1/b'))?.version, 2);
    t.equal((await s.getRecord('88.1/b'))?.updatedAt, '2026-03-01T10:01:00Z');
    t.same(await s.listRecordHandles('88.1', 10, 0), ['88.1/A', '88.1/B'], 'key order, deleted ones gone');
    t.same(await s.listRecordHandles('88.1', 1, 1), ['88.1/B'], 'limit and offset');
    t.same(await s.listRecordsAfter('88.1', '', 1), [{ key: '88.1/a', handle: '88.1/A' }], 'keyset: the first page');
    t.same(await s.listRecordsAfter('88.1', '88.1/a', 10), [{ key: '88.1/b', handle: '88.1/B' }], 'keyset: after a key');
    t.same(await s.listRecordsAfter('88.1', '88.1/aa', 10), [{ key: '88.1/b', handle: '88.1/B' }], 'keyset: after a key that is gone');
    t.same(await s.listRecordsAfter('88.1', '88.1/b', 10), [], 'keyset: past the last');
    t.same(await s.listRecordsAfter('88.1.2', '', 10), [{ key: '88.1.2/x', handle: '88.1.2/X' }], 'keyset: one prefix, not those under it');
    t.equal(await s.countRecords('88.1'), 2);
    t.equal(await s.countRecords('88.9'), 0);
    t.equal(await s.countRecordsUnder('88.1'), 3, 'the prefix and those under it, not 88.10');
    t.equal(await s.totalRecords(), 4);
    t.equal((await s.versionAsOf('88.1/b', '2026-03-01T10:00:30Z'))?.valuesJson, '[1]');
    t.equal((await s.versionAsOf('88.1/b', '2026-03-01T10:01:00Z'))?.valuesJson, '[2]');
    t.equal(await s.versionAsOf('88.1/b', '2026-03-01T09:00:00Z'), undefined, 'before the first version');
    t.match(await s.versionAsOf('88.1/c', '2026-03-01T10:02:00Z'), { version: 2, valuesJson: null, action: 'record.delete' }, 'deleted ones included');
    t.same(
      (await s.versions('88.1/b', 1, 10)).map((v) => [v.version, v.valuesJson, v.at]),
      [[2, '[2]', '2026-03-01T10:01:00Z']],
    );
    t.same(await s.answerRow('88.1/a'), ['88.1/A', '[1]', null, 0, null, '"e"']);
    t.same(await s.verifyAudit(), { ok: true, checked: 7 });
  });

for (const engine of ENGINES)
  t.test(`${engine}: prefixes, tokens and templates`, async (t) => {
    const s = await stores.open(t, engine);
    if (s === undefined) return;
    const prefix = (key: string, status: 'active' | 'pending') => ({
      prefixKey: key,
      prefix: key.toUpperCase(),
      parentKey: '88',
      ownerJson: '{"name":"Ünïcode Ltd"}',
      site: null,
      status,
      createdAt: '2026-01-01T00:00:00Z',
      updatedAt: '2026-01-01T00:00:00Z',
    });
    await s.write({ actor: 'admin', action: 'prefix.create', target: '88.2' }, async (tx) => {
      await tx.putPrefix(prefix('88.2', 'pending'));
      await tx.putPrefix(prefix('88.10', 'active'));
      return { result: undefined, payload: 'p', keepPayload: true };
    });
    await s.write({ actor: 'admin', action: 'prefix.update', target: '88.2' }, async (tx) => {
      await tx.putPrefix({ ...prefix('88.2', 'active'), prefix: 'ignored on update', updatedAt: tx.at });
      t.equal((await tx.getPrefix('88.2'))?.status, 'active', 'the write sees its own change');
      return { result: undefined, payload: 'p2', keepPayload: true };
    });
    t.equal((await s.getPrefix('88.2'))?.prefix, '88.2', 'the spelling stays');
    t.equal((await s.getPrefix('88.2'))?.ownerJson, '{"name":"Ünïcode Ltd"}');
    t.same(
      (await s.allPrefixes()).map((p) => p.prefixKey),
      ['88.10', '88.2'],
      'bytewise key order',
    );
    await s.write({ actor: 'admin', action: 'prefix.delete', target: '88.10' }, async (tx) => {
      await tx.deletePrefix('88.10');
      return { result: undefined, payload: 'd', keepPayload: true };
    });
    t.equal(await s.getPrefix('88.10'), undefined);

    const token = (id: string, role: 'admin' | 'registrar') => ({
      id,
      role,
      prefixesJson: '["88.2"]',
      secretHash: `hash-${id}`,
      label: null,
      createdAt: '2026-01-01T00:00:00Z',
      revokedAt: null,
    });
    await s.write({ actor: 'admin', action: 'token.create', target: 'tok_b' }, async (tx) => {
      await tx.insertToken(token('tok_b', 'admin'));
      await tx.insertToken(token('tok_a', 'admin'));
      await tx.insertToken(token('tok_c', 'registrar'));
      return { result: undefined, payload: 't', keepPayload: true };
    });
    t.equal(await s.activeAdminCount(), 2);
    await s.write({ actor: 'admin', action: 'token.revoke', target: 'tok_a' }, async (tx) => {
      await tx.revokeToken('tok_a');
      return { result: undefined, payload: 'r', keepPayload: true };
    });
    t.equal(await s.activeAdminCount(), 1);
    t.equal((await s.tokenByHash('hash-tok_c'))?.role, 'registrar');
    t.ok((await s.tokenById('tok_a'))?.revokedAt, 'revoked');
    t.equal(await s.tokenByHash('nope'), undefined);
    t.same(
      (await s.listTokens()).map((k) => k.id),
      ['tok_a', 'tok_b', 'tok_c'],
    );

    const template = (version: string, body: string) => ({
      prefixKey: '88.2',
      version,
      prefix: '88.2',
      bodyJson: body,
      used: 0 as const,
      createdAt: '2026-01-01T00:00:00Z',
      updatedAt: '2026-01-01T00:00:00Z',
    });
    await s.write({ actor: 'admin', action: 'template.put', target: '88.2@1' }, async (tx) => {
      await tx.putTemplate(template('2', '{"items":[]}'));
      await tx.putTemplate(template('1', '{"items":[1]}'));
      return { result: undefined, payload: 'tp', keepPayload: true };
    });
    const marked = await s.write({ actor: 'x', action: 'record.create', target: 'x' }, async (tx) => {
      await tx.markTemplateUsed('88.2', '1');
      await tx.markTemplateUsed('88.2', '1');
      return { result: undefined, payload: null };
    });
    t.equal(marked, undefined);
    t.same(
      (await s.allTemplates()).map((m) => [m.version, m.used, m.bodyJson]),
      [
        ['1', 1, '{"items":[1]}'],
        ['2', 0, '{"items":[]}'],
      ],
    );
    // Payload null: no entry, so the row that write changed is not in any write set.
    t.match(
      await s.verifyAudit(),
      { ok: false, checked: 6, firstBroken: { seq: 6, table: 'templates', key: '["88.2","1"]', reason: /altered/ } },
      'a change written without an audit entry is found',
    );
  });

for (const engine of ENGINES)
  t.test(`${engine}: lineage: events, edges opened and closed, walks both ways, edges at a time`, async (t) => {
    const s = await stores.open(t, engine);
    if (s === undefined) return;
    const event = (action: string, time: string) => ({ type: 'aggregation' as const, action, eventTime: time, bodyJson: `{"a":"${action}"}` });
    const ids = await s.write({ actor: 'reg', action: 'event.create', target: 'ev' }, async (tx) => {
      const e1 = await tx.insertEvent(event('ADD', '2026-01-01T00:00:00.000Z'));
      t.ok(await tx.openEdge('88.1/p', '88.1/c1', 'contains', '2026-01-01T00:00:00.000Z', e1));
      t.ok(await tx.openEdge('88.1/p', '88.1/c2', 'contains', '2026-01-01T00:00:00.000Z', e1));
      t.ok(await tx.openEdge('88.1/c1', '99.9/far', 'contains', '2026-01-01T00:00:00.000Z', e1));
      t.notOk(await tx.openEdge('88.1/p', '88.1/c1', 'contains', '2026-01-02T00:00:00.000Z', e1), 'already open');
      await tx.nameIdentifier('88.1/c2', '88.1/C2');
      await tx.nameIdentifier('88.1/c2', '88.1/other');
      const e2 = await tx.insertEvent(event('DELETE', '2026-02-01T00:00:00.000Z'));
      t.ok(await tx.closeEdge('88.1/p', '88.1/c2', 'contains', '2026-02-01T00:00:00.000Z', e2));
      t.notOk(await tx.closeEdge('88.1/p', '88.1/c2', 'contains', '2026-02-01T00:00:00.000Z', e2), 'nothing open to close');
      t.same(await tx.openChildren('88.1/p', 'contains'), ['88.1/c1']);
      return { result: [e1, e2], payload: 'events', keepPayload: true };
    });
    t.same(ids, [1, 2]);
    await putRecord(s, '88.1/p', '[]');
    const before = await s.walk('88.1/p', 'down', 5, '2026-01-15T00:00:00.000Z', 100);
    t.same(before.map((r) => [r.key, r.depth, r.recordHandle, r.namedHandle, r.more, r.fromKey]).sort(), [
      ['88.1/c1', 1, null, null, 0, '88.1/p'],
      ['88.1/c2', 1, null, '88.1/C2', 0, '88.1/p'],
      ['88.1/p', 0, '88.1/P', null, 0, null],
      ['99.9/far', 2, null, null, 0, '88.1/c1'],
    ]);
    const shallow = await s.walk('88.1/p', 'down', 1, '2026-03-01T00:00:00.000Z', 100);
    t.same(
      shallow.map((r) => [r.key, r.more]).sort(),
      [
        ['88.1/c1', 1],
        ['88.1/p', 0],
      ],
      'the closed edge is gone; more marks an edge past the depth',
    );
    t.equal((await s.walk('88.1/p', 'down', 5, '2026-01-15T00:00:00.000Z', 2)).length, 2, 'the row limit');
    t.same(
      (await s.walk('99.9/far', 'up', 5, '2026-03-01T00:00:00.000Z', 100)).map((r) => [r.key, r.depth]),
      [
        ['99.9/far', 0],
        ['88.1/c1', 1],
        ['88.1/p', 2],
      ],
      'breadth first upwards',
    );
    const edges = await s.edgesAt(['88.1/p', '88.1/c1'], 'down', '2026-01-15T00:00:00.000Z', 10);
    t.same(edges.map((e) => [e.fromKey, e.toKey, e.eventId]).sort(), [
      ['88.1/c1', '99.9/far', 1],
      ['88.1/p', '88.1/c1', 1],
      ['88.1/p', '88.1/c2', 1],
    ]);
    t.equal((await s.edgesAt(['99.9/far'], 'up', '2026-01-15T00:00:00.000Z', 10))[0]?.fromKey, '88.1/c1');
    t.same(await s.verifyAudit(), { ok: true, checked: 2 });
  });

for (const engine of ENGINES)
  t.test(`${engine}: outbox and reports`, async (t) => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const s = await stores.open(t, engine, { now: () => new Date(now) });
    if (s === undefined) return;
    await s.write({ actor: 'admin', action: 'prefix.create', target: '88.3' }, async (tx) => {
      await tx.enqueueReport('prefix', 'k1', '{"p":1}');
      await tx.enqueueReport('prefix', 'k2', '{"p":2}');
      return { result: undefined, payload: 'x', keepPayload: true };
    });
    t.equal(await s.pendingReports(), 2);
    const due = await s.dueReports(now, 10);
    t.same(
      due.map((r) => [r.id, r.idemKey, r.state, r.attempts, r.createdAt]),
      [
        [1, 'k1', 'pending', 0, '2026-01-01T00:00:00Z'],
        [2, 'k2', 'pending', 0, '2026-01-01T00:00:00Z'],
      ],
    );
    await s.retryReport(1, now + 60_000, 'upstream down');
    now += 1000;
    await s.markReport(2, 'sent', null);
    t.same(
      (await s.dueReports(now, 10)).map((r) => r.id),
      [],
      'retried one waits; sent one is done',
    );
    t.same(
      (await s.outbox(0, 10)).map((r) => [r.id, r.state, r.attempts, r.lastError, r.nextAttemptAt, r.doneAt]),
      [
        [1, 'pending', 1, 'upstream down', Date.parse('2026-01-01T00:01:00Z'), null],
        [2, 'sent', 1, null, 0, '2026-01-01T00:00:01Z'],
      ],
    );
    t.equal(await s.pendingReports(), 1);
    // Claims: a claimed report is the claimer's until its lease runs out.
    await s.write({ actor: 'admin', action: 'prefix.create', target: '88.4' }, async (tx) => {
      for (const k of ['k3', 'k4', 'k5']) await tx.enqueueReport('prefix', k, '{}');
      return { result: undefined, payload: 'y', keepPayload: true };
    });
    const claimed = await s.claimReports(now, 2, 30_000);
    t.same(
      claimed.map((r) => [r.id, r.idemKey, r.state, r.nextAttemptAt]),
      [
        [3, 'k3', 'pending', now + 30_000],
        [4, 'k4', 'pending', now + 30_000],
      ],
      'oldest first, next attempt at the lease end',
    );
    t.same(
      (await s.claimReports(now, 10, 30_000)).map((r) => r.id),
      [5],
      'a second claim skips the claimed ones',
    );
    t.same(await s.claimReports(now + 29_999, 10, 30_000), [], 'nothing while the leases hold (1 waits for its retry)');
    await s.markReport(3, 'sent', null);
    t.same(
      (await s.claimReports(now + 60_000, 10, 30_000)).map((r) => r.id),
      [1, 4, 5],
      'expired leases and the due retry are claimed again; a sent one never',
    );
    t.equal(await s.pendingReports(), 3, 'claimed ones stay pending until marked');
    const id = await s.write({ actor: 'node', action: 'sync.report', target: 'r' }, async (tx) => {
      t.equal(await tx.reportByKey('tok_n', 'i1'), undefined);
      const id = await tx.insertReport({ reporter: 'tok_n', idemKey: 'i1', kind: 'prefix', bodyJson: '{}', outcome: 'accepted', message: null });
      t.equal((await tx.reportByKey('tok_n', 'i1'))?.id, id, 'the write sees its own report');
      return { result: id, payload: 'r', keepPayload: true };
    });
    t.equal(id, 1);
    t.match(await s.reportByKey('tok_n', 'i1'), { id: 1, outcome: 'accepted', receivedAt: '2026-01-01T00:00:01Z' });
    t.same(
      (await s.reports(0, 10)).map((r) => r.idemKey),
      ['i1'],
    );
    await t.rejects(
      s.write({ actor: 'node', action: 'sync.report', target: 'r' }, async (tx) => {
        await tx.insertReport({ reporter: 'tok_n', idemKey: 'i1', kind: 'prefix', bodyJson: '{}', outcome: 'accepted', message: null });
        return { result: 0, payload: 'dup' };
      }),
      { code: 'IDN_INTERNAL' },
      'a duplicate report key is a constraint failure',
    );
    t.same(await s.verifyAudit(), { ok: true, checked: 3 });
  });

for (const engine of ENGINES)
  t.test(`${engine}: audit page and head; verification finds an edited actor, a deleted entry and an edited payload`, async (t) => {
    const s = await stores.open(t, engine);
    if (s === undefined) return;
    t.same(await s.auditHead(), { seq: 0, hash: GENESIS_HASH });
    for (let i = 1; i <= 4; i++) await putRecord(s, `88.1/r${i}`, `[${i}]`);
    await s.write({ actor: 'admin', action: 'prefix.create', target: '88.5' }, async () => ({ result: undefined, payload: 'kept', keepPayload: true }));
    const page = await s.auditPage(1, 2);
    t.same(
      page.map((e) => e.seq),
      [2, 3],
    );
    const head = await s.auditHead();
    t.equal(head.seq, 5);
    t.equal(head.hash, (await s.auditPage(4, 1))[0]!.hash);
    t.same(await s.verifyAudit(), { ok: true, checked: 5 });
    const file = attacker(s.path);
    t.teardown(() => file.close());
    await file.setPayload(5, 'edited');
    t.match(await s.verifyAudit(), { ok: false, checked: 4, firstBroken: { seq: 5, reason: /payload was edited/ } });
    await file.setPayload(5, 'kept');
    await file.setAuditActor(2, 'mallory');
    t.match(await s.verifyAudit(), { ok: false, checked: 1, firstBroken: { seq: 2, reason: /hash does not match/ } });
    await file.setAuditActor(2, 'tok_1');
    t.same(await s.verifyAudit(), { ok: true, checked: 5 });
    await file.deleteAuditEntry(3);
    t.match(await s.verifyAudit(), { ok: false, checked: 2, firstBroken: { seq: 3, reason: /entry 3 is missing/ } });
  });

for (const engine of ENGINES)
  t.test(`${engine}: escrow snapshot into a fresh store of each engine: the same rows, answers and a verifying chain`, async (t) => {
    let now = Date.parse('2026-05-05T05:05:05Z');
    const s = await stores.open(t, engine, { now: () => new Date(now) });
    if (s === undefined) return;
    await putRecord(s, '88.1/a', '[{"index":1,"type":"URL","data":{"format":"string","value":"https://例え.jp/ü"}}]');
    now += 1000;
    await putRecord(s, '88.1/b', '[2]');
    await deleteRecord(s, '88.1/b');
    await s.write({ actor: 'reg', action: 'event.create', target: 'ev' }, async (tx) => {
      const e = await tx.insertEvent({ type: 'aggregation', action: 'ADD', eventTime: '2026-05-05T00:00:00.000Z', bodyJson: '{}' });
      await tx.openEdge('88.1/a', '88.1/z', 'contains', '2026-05-05T00:00:00.000Z', e);
      await tx.nameIdentifier('88.1/z', '88.1/Z');
      return { result: undefined, payload: 'ev', keepPayload: true };
    });
    const rows = new Map<string, Array<Record<string, unknown>>>();
    await s.snapshot((table, row) => {
      if (!rows.has(table)) rows.set(table, []);
      rows.get(table)!.push(row);
    });
    t.same([...rows.keys()].sort(), ['audit_log', 'audit_payloads', 'edges', 'events', 'lineage_names', 'record_versions', 'records']);
    for (const target of ENGINES) {
      const r = await stores.open(t, target);
      if (r === undefined) continue;
      for (const [table, list] of rows) await r.insertRows(table as EscrowTable, list);
      t.same(await r.answerRow('88.1/a'), await s.answerRow('88.1/a'), `${engine} → ${target}: the same answer`);
      t.same(await r.versions('88.1/b', 0, 10), await s.versions('88.1/b', 0, 10));
      t.same(await r.auditPage(0, 100), await s.auditPage(0, 100));
      t.same(await r.verifyAudit(), { ok: true, checked: 4 });
      t.equal(await r.countRecords('88.1'), 1, 'counters follow a restore');
      t.same(
        (await r.walk('88.1/a', 'down', 2, '2026-06-01T00:00:00.000Z', 10)).map((w) => w.namedHandle ?? w.recordHandle),
        ['88.1/A', '88.1/Z'],
      );
      // The restored chain goes on where the export's ended.
      t.same(await putRecord(r, '88.1/c', '[3]'), { version: 1, seq: 5 });
      t.same(await r.verifyAudit(), { ok: true, checked: 5 });
    }
  });

t.test('the same writes give byte-identical answers, versions and audit hashes on both engines', async (t) => {
  const written: Array<Awaited<ReturnType<typeof collect>>> = [];
  async function collect(s: StoreEngine) {
    return {
      answers: await Promise.all(['88.1/ü', '88.1/a', '88.1/gone'].map((k) => s.answerRow(k))),
      record: await s.getRecord('88.1/ü'),
      versions: await s.versions('88.1/ü', 0, 10),
      audit: await s.auditPage(0, 10),
      changes: await s.changesAfter(0, 10),
    };
  }
  for (const engine of ENGINES) {
    let now = Date.parse('2026-11-30T23:59:59Z');
    const s = await stores.open(t, engine, { now: () => new Date(now) });
    if (s === undefined) return;
    const values = '[{"index":1,"type":"DESC","data":{"format":"string","value":"Motor 😀 Ölpumpe «x» \\u0000 \\\\"}}]';
    await s.write({ actor: 'tok_ü', action: 'record.create', target: '88.1/ü' }, async (tx) => {
      await tx.putRecord({
        handleKey: '88.1/ü',
        handle: '88.1/Ü',
        prefixKey: '88.1',
        valuesJson: values,
        publicJson: '[]',
        maxAge: 172800,
        expiresAt: 4102444800000,
        etag: '"Ω-1"',
      });
      return { result: undefined, payload: versionLine('88.1/Ü', values) };
    });
    now += 1;
    await putRecord(s, '88.1/a', '[]');
    await putRecord(s, '88.1/gone', '[]');
    await deleteRecord(s, '88.1/gone');
    written.push(await collect(s));
  }
  if (written.length < 2) return;
  t.same(written[1], written[0]);
  t.equal(JSON.stringify(written[1]), JSON.stringify(written[0]), 'byte for byte');
  t.equal(written[0]!.answers[0]![5], '"Ω-1"');
  t.equal(written[0]!.answers[0]![4], 4102444800000, 'ms timestamps survive as numbers');
});

t.test('write sets: writes of one batch touching the same rows each record what they left, byte-identical on both engines', async (t) => {
  const entries: Array<Awaited<ReturnType<StoreEngine['auditEntries']>>> = [];
  for (const engine of ENGINES) {
    const batches: number[] = [];
    const s = await stores.open(t, engine, { now: () => new Date('2026-11-30T12:00:00Z'), onBatch: (n) => batches.push(n) });
    if (s === undefined) return;
    const write = (action: string, target: string, apply: (tx: WriteTx) => Promise<unknown>, payload = target) =>
      s.write({ actor: 'tok_1', action, target }, async (tx) => ({ result: await apply(tx), payload, keepPayload: !action.startsWith('record.') }));
    const prefix = {
      prefixKey: '88.1',
      prefix: '88.1',
      parentKey: '88',
      ownerJson: '{}',
      site: null,
      status: 'active' as const,
      createdAt: 'c',
      updatedAt: 'u',
    };
    // Submitted together: on PostgreSQL they share one transaction, on SQLite they run one by one.
    await Promise.all([
      write('prefix.create', '88.1', (tx) => tx.putPrefix({ ...prefix, redirect: true })),
      write('prefix.update', '88.1', (tx) => tx.putPrefix({ ...prefix, redirect: null, status: 'suspended' })),
      write('record.create', '88.1/a', (tx) => tx.putRecord(testRecordRow('88.1/a', '[1]')), versionLine('88.1/A', '[1]')),
      write('record.update', '88.1/a', (tx) => tx.putRecord(testRecordRow('88.1/a', '[2]')), versionLine('88.1/A', '[2]')),
      write('record.delete', '88.1/a', (tx) => tx.deleteRecord('88.1/a', '88.1/A'), versionLine('88.1/A', null)),
      write('record.create', '88.1/a', (tx) => tx.putRecord(testRecordRow('88.1/a', '[3]')), versionLine('88.1/A', '[3]')),
      write(
        'record.create',
        '88.1/b',
        (tx) => tx.putRecord({ ...testRecordRow('88.1/b', '[4]'), maxAge: 60, expiresAt: 4102444800000 }),
        versionLine('88.1/B', '[4]'),
      ),
      write('template.put', '88.1@1', async (tx) => {
        await tx.putTemplate({ prefixKey: '88.1', version: '1', prefix: '88.1', bodyJson: '{}', used: 0, createdAt: 'c', updatedAt: 'u' });
        await tx.markTemplateUsed('88.1', '1');
      }),
      write('event.create', '88.1/a', async (tx) => {
        const e = await tx.insertEvent({ type: 'aggregation', action: 'ADD', eventTime: 'e', bodyJson: '{}' });
        await tx.openEdge('88.1/a', '88.1/x', 'contains', 's', e);
        await tx.closeEdge('88.1/a', '88.1/x', 'contains', 's', e);
        await tx.nameIdentifier('88.1/x', '88.1/X');
      }),
    ]);
    if (engine === 'postgres') t.ok(Math.max(...batches) > 1, `${engine}: writes shared a transaction (batches: ${batches.join(', ')})`);
    t.same(await s.verifyAudit(), { ok: true, checked: 9 }, `${engine}: verifies`);
    const log = await s.auditEntries(0, 100);
    const recordLines = log.slice(2, 6).map((e) => e.writeSet!.split('\n').find((l) => l.startsWith('records\t'))!);
    t.equal(new Set(recordLines).size, 4, `${engine}: each write of 88.1/a hashes the row it left`);
    t.match(recordLines[2], /\t-$/, `${engine}: the delete left no row`);
    t.same(
      (await s.tablePage('records', null, 10)).map((r) => r.slice(0, 2)),
      [
        ['88.1/a', 1],
        ['88.1/b', 2],
      ],
      `${engine}: record ids as SQLite's rowid gives them (the deleted highest id is given again)`,
    );
    entries.push(log);
  }
  if (entries.length < 2) return;
  t.same(entries[1], entries[0], 'the same write sets, rows digests and hashes on both engines');
  t.equal(JSON.stringify(entries[1]), JSON.stringify(entries[0]), 'byte for byte');
});

t.test('postgres: the audit log is range partitioned by seq, made ahead of the head; a log across partitions verifies and restores', async (t) => {
  const c = await stores.cluster();
  if (c === undefined) return;
  const url = await c.createDatabase();
  const s = (await stores.open(t, 'postgres', { url, auditPartitionEntries: 200 }))!;
  const raw = tamperPg(url);
  t.teardown(() => raw.close());
  t.same(await raw.partitions('audit_log'), [[1, 201, 0]], 'a new database: one partition of the size asked for');
  // 1000 entries in concurrent writes (group-committed batches); every 10th keeps a payload.
  for (let i = 0; i < 1000; i += 50)
    await Promise.all(
      Array.from({ length: 50 }, (_, j) =>
        (i + j) % 10 === 0
          ? s.write({ actor: 'admin', action: 'prefix.create', target: `p${i + j}` }, async () => ({
              result: undefined,
              payload: `p${i + j}`,
              keepPayload: true,
            }))
          : putRecord(s, `88.1/r${i + j}`, `[${i + j}]`),
      ),
    );
  t.equal((await s.auditHead()).seq, 1000);
  const log = await raw.partitions('audit_log');
  t.ok(log.length >= 6, `at least 6 partitions (${log.length})`);
  log.forEach(([from, to], i) => {
    t.equal(to - from, 200, `partition ${i} holds 200 seqs`);
    if (i > 0) t.equal(from, log[i - 1]![1], `partition ${i} starts where ${i - 1} ends`);
  });
  t.equal(log[0]![0], 1);
  t.ok(log.at(-1)![1] > 1000 + 100, 'a partition is ready ahead of the head');
  t.same(
    log.filter(([from]) => from <= 1000).map(([, , n]) => n),
    [200, 200, 200, 200, 200],
    'each full partition holds its 200 entries',
  );
  t.same(
    (await raw.partitions('audit_payloads')).map(([from, to]) => [from, to]),
    log.map(([from, to]) => [from, to]),
    'payloads share the bounds',
  );
  t.same(
    (await raw.partitions('audit_payloads')).filter(([from]) => from <= 1000).map(([, , n]) => n),
    [20, 20, 20, 20, 20],
  );
  t.same(
    (await s.auditPage(195, 10)).map((e) => e.seq),
    [196, 197, 198, 199, 200, 201, 202, 203, 204, 205],
    'a page across a partition boundary',
  );
  t.same(await s.verifyAudit({ sliceEntries: 64 }), { ok: true, checked: 1000 });

  // A reopen with another size: partitions made from then on have it.
  await s.close();
  const s2 = (await stores.open(t, 'postgres', { url, auditPartitionEntries: 300 }))!;
  for (let i = 0; i < 400; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => putRecord(s2, `88.1/q${i + j}`, '[1]')));
  const grown = await raw.partitions('audit_log');
  t.same(
    grown.slice(0, log.length).map(([from, to]) => [from, to]),
    log.map(([from, to]) => [from, to]),
    'existing partitions keep their bounds',
  );
  t.ok(grown.length > log.length, 'new partitions were made');
  t.same(
    grown.slice(log.length).map(([from, to]) => to - from),
    Array(grown.length - log.length).fill(300),
  );
  t.ok(grown.at(-1)![1] > 1400 + 100);
  t.same(await s2.verifyAudit(), { ok: true, checked: 1400 });

  // Tampering in a middle partition is found there.
  await raw.setAuditActor(450, 'mallory');
  t.match(await s2.verifyAudit(), { ok: false, firstBroken: { seq: 450 } });
  await raw.setAuditActor(450, 'tok_1');
  t.same(await s2.verifyAudit(), { ok: true, checked: 1400 });

  // An escrow restore into a new database makes the partitions its rows need first.
  const rows = new Map<string, Array<Record<string, unknown>>>();
  await s2.snapshot((table, row) => {
    if (!rows.has(table)) rows.set(table, []);
    rows.get(table)!.push(row);
  });
  t.equal(rows.get('audit_log')!.length, 1400, 'the export reads every partition');
  const restoredUrl = await c.createDatabase();
  const r = (await stores.open(t, 'postgres', { url: restoredUrl, auditPartitionEntries: 250 }))!;
  for (const [table, list] of rows) await r.insertRows(table as EscrowTable, list);
  t.same(await r.verifyAudit(), { ok: true, checked: 1400 });
  const rawR = tamperPg(restoredUrl);
  t.teardown(() => rawR.close());
  const restored = await rawR.partitions('audit_log');
  t.ok(restored.at(-1)![1] > 1400, 'partitions reach past the restored head');
  t.equal(
    restored.reduce((n, [, , rows]) => n + rows, 0),
    1400,
  );
  t.same(await putRecord(r, '88.1/after', '[1]'), { version: 1, seq: 1401 }, 'the restored chain goes on');
});

t.test(
  'a batch in memory: a failing write drops its records alone, the others commit; one key in many writes; tombstones; byte-identical on both engines',
  async (t) => {
    const seen: unknown[] = [];
    for (const engine of ENGINES) {
      const batches: number[] = [];
      const s = await stores.open(t, engine, { now: () => new Date('2026-11-30T12:00:00Z'), onBatch: (n) => batches.push(n) });
      if (s === undefined) return;
      await putRecord(s, '88.1/gone', '[0]');
      await deleteRecord(s, '88.1/gone');
      await putRecord(s, '88.1/old', '[0]');
      const write = (target: string, apply: (tx: WriteTx) => Promise<unknown>, keys?: string[], values?: string | null) =>
        s.write(
          { actor: 'tok_1', action: 'record.update', target },
          async (tx) => ({ result: await apply(tx), payload: values === undefined ? null : versionLine(target.toUpperCase(), values) }),
          keys ? { keys } : undefined,
        );
      const tomb = { handle: '88.1/OLD', at: '2026-11-30T12:00:00Z', actor: 'tok_1' };
      const gone = { handle: '88.1/GONE', at: '2026-11-30T12:00:00Z', actor: 'tok_1' };
      const outcomes = await Promise.allSettled([
        write('88.1/a', (tx) => tx.putRecord(testRecordRow('88.1/a', '[1]')), ['88.1/a'], '[1]'),
        // Puts, then fails before any statement: only its in-memory layer is dropped.
        write('88.1/b', async (tx) => {
          await tx.putRecord(testRecordRow('88.1/b', '[2]'));
          await tx.putRecord(testRecordRow('88.1/a', '[never]'));
          throw new IdnError('IDN_INVALID_VALUE', 'refused after its puts');
        }),
        // Puts and runs a statement (its savepoint is open), then fails: both undone.
        write('88.1/c', async (tx) => {
          await tx.putRecord(testRecordRow('88.1/c', '[3]'));
          await tx.nameIdentifier('88.1/c', '88.1/C');
          throw new IdnError('IDN_INVALID_VALUE', 'refused after a statement');
        }),
        write('88.1/a', async (tx) => [await tx.getRecord('88.1/b'), await tx.getRecord('88.1/c'), (await tx.getRecord('88.1/a'))?.valuesJson], ['88.1/b']),
        write('88.1/a', (tx) => tx.putRecord(testRecordRow('88.1/a', '[4]')), undefined, '[4]'),
        write('88.1/a', (tx) => tx.putRecord(testRecordRow('88.1/a', '[5]')), ['88.1/a'], '[5]'),
        write('88.1/old', async (tx) => [await tx.tombstone?.('88.1/old'), await tx.deleteRecord('88.1/old', '88.1/OLD')], ['88.1/old'], null),
        write('88.1/old', async (tx) => [await tx.tombstone?.('88.1/old'), await tx.getRecord('88.1/old'), await tx.tombstone?.('88.1/gone')]),
        write(
          '88.1/gone',
          async (tx) => [await tx.putRecord(testRecordRow('88.1/gone', '[6]')), await tx.tombstone?.('88.1/gone')],
          ['88.1/gone', '88.1/x'],
          '[6]',
        ),
        write('88.1/gone', async (tx) => [await tx.tombstone?.('88.1/gone'), (await tx.getRecord('88.1/gone'))?.version]),
      ]);
      if (engine === 'postgres') t.ok(Math.max(...batches) > 4, `${engine}: the writes shared a transaction (batches: ${batches.join(', ')})`);
      t.same(
        outcomes.map((o) => o.status),
        ['fulfilled', 'rejected', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled'],
        `${engine}: each failing write rejects alone`,
      );
      const values = outcomes.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as IdnError).message));
      t.same(values[3], [undefined, undefined, '[1]'], `${engine}: a later write sees what committed before it, not what failed`);
      t.same([values[4], values[5]], [2, 3], `${engine}: two writes of one key in one batch take the next versions`);
      t.same(values[6], [undefined, 2], `${engine}: no tombstone before the deletion`);
      t.same(values[7], [tomb, undefined, gone], `${engine}: the next write sees the deletion as a tombstone`);
      t.same(values[8], [3, gone], `${engine}: re-registered past the deletion's version (its own version is written after it)`);
      t.same(values[9], [undefined, 3], `${engine}: and the next write sees no tombstone`);
      t.same(await s.verifyAudit(), { ok: true, checked: 8 }, `${engine}: verifies`);
      seen.push({
        values,
        records: await s.tablePage('records', null, 10),
        versions: await Promise.all(['88.1/a', '88.1/b', '88.1/c', '88.1/old', '88.1/gone'].map((k) => s.versions(k, 0, 10))),
        names: await s.tablePage('lineage_names', null, 10),
        counts: await s.countRecords('88.1'),
        audit: await s.auditEntries(0, 100),
      });
    }
    if (seen.length < 2) return;
    t.same(seen[1], seen[0], 'the same rows, versions, write sets and hashes on both engines');
    t.equal(JSON.stringify(seen[1]), JSON.stringify(seen[0]), 'byte for byte');
  },
);

t.test('record ids in a batch: deleting the highest id gives it again, as SQLite rowids do, on both engines', async (t) => {
  const seen: unknown[] = [];
  for (const engine of ENGINES) {
    const s = await stores.open(t, engine, { now: () => new Date('2026-11-30T12:00:00Z') });
    if (s === undefined) return;
    for (const k of ['a', 'b', 'c']) await putRecord(s, `88.1/${k}`, '[0]');
    const hint = (keys?: string[]) => (keys ? { keys } : undefined);
    const put = (k: string, keys?: string[]) =>
      s.write(
        { actor: 'tok_1', action: 'record.update', target: k },
        async (tx) => ({ result: await tx.putRecord(testRecordRow(`88.1/${k}`, '[1]')), payload: versionLine(`88.1/${k.toUpperCase()}`, '[1]') }),
        hint(keys),
      );
    const del = (k: string, keys?: string[]) =>
      s.write(
        { actor: 'tok_1', action: 'record.delete', target: k },
        async (tx) => ({ result: await tx.deleteRecord(`88.1/${k}`, `88.1/${k.toUpperCase()}`), payload: versionLine(`88.1/${k.toUpperCase()}`, null) }),
        hint(keys),
      );
    // c (3) deleted: d takes 3; d deleted: e takes 3 again; b (2) deleted below the top: f takes 4.
    await Promise.all([del('c', ['88.1/c']), put('d'), del('d', ['88.1/d']), put('e', ['88.1/e']), del('b'), put('f'), put('a', ['88.1/a'])]);
    const ids = (await s.tablePage('records', null, 10)).map((r) => [r[0], r[1]]);
    t.same(
      ids,
      [
        ['88.1/a', 1],
        ['88.1/e', 3],
        ['88.1/f', 4],
      ],
      `${engine}: ids as SQLite's rowid gives them`,
    );
    await put('g');
    t.same((await s.tablePage('records', null, 10)).at(-1)!.slice(0, 2), ['88.1/g', 5], `${engine}: the next batch goes on from the head`);
    t.same(await s.verifyAudit(), { ok: true, checked: 11 }, `${engine}: verifies`);
    seen.push({ ids, audit: await s.auditEntries(0, 100), count: await s.countRecords('88.1') });
  }
  if (seen.length < 2) return;
  t.equal(JSON.stringify(seen[1]), JSON.stringify(seen[0]), 'byte for byte on both engines');
});

t.test('bulk chunks with a reference template give the same edges, names, records and audit hashes on both engines', async (t) => {
  const seen: unknown[] = [];
  const line = (n: string, ref: string, batch = 'B-1') =>
    JSON.stringify({
      handle: `88.100.7/${n}`,
      values: [
        { index: 1, type: 'URL', data: `https://acme.example/${n}` },
        { index: 1001, type: 'TEMPLATE', data: '1' },
        { index: 2001, type: 'batch', data: batch },
        { index: 2002, type: 'made', data: ref },
      ],
    });
  for (const engine of ENGINES) {
    let now = Date.parse('2026-11-30T12:00:00Z');
    const s = await stores.open(t, engine, { now: () => new Date(now) });
    if (s === undefined) return;
    const templates = await createTemplates({ store: s });
    await templates.put(
      '88.100.7',
      '1',
      {
        items: [
          { name: 'batchNo', idIndex: 2001, idType: 'batch', dataType: 'string', required: true },
          { name: 'made', idIndex: 2002, idType: 'made', dataType: 'reference', referenceType: 'many' },
        ],
      },
      'tok_1',
    );
    // A node reloads them when the change feed names them; here at once.
    await templates.reload();
    const bulk = createBulk({ store: s, templates, valuesMax: 100, lineMaxBytes: 10_000, chunkSize: 4, onWritten: () => undefined });
    const run = async (lines: string[], overwrite: boolean) => {
      const out: unknown[] = [];
      await bulk.run(
        (async function* () {
          yield lines.join('\n');
        })(),
        { prefixKey: '88.100.7', overwrite, onError: 'line', actor: 'tok_1' },
        (r) => void out.push(r),
      );
      now += 1000;
      return out;
    };
    await putRecord(s, '88.100.7/gone', '[]', '88.100.7');
    await deleteRecord(s, '88.100.7/gone');
    const first = await run(
      [
        line('P-1', '88.200.1/Steel-1, 88.200.1/STEEL-2'),
        line('P-2', '88.200.1/STEEL-1'),
        line('P-3', '88.100.7/P-1'),
        line('gone', '88.200.1/x'),
        line('P-4', '88.200.1/steel-2'),
        line('P-5', '88.200.1/Steel-3'),
      ],
      false,
    );
    // Changed references close the edges no longer named and open the new ones.
    const second = await run([line('P-1', '88.200.1/STEEL-2, 88.200.1/STEEL-4'), line('P-2', '88.200.1/STEEL-1', 'B-2'), line('P-6', '88.100.7/P-2')], true);
    t.match(first.at(-1), { summary: true, total: 6, ok: 5, failed: 1 }, `${engine}: the deleted identifier is refused in its chunk`);
    t.match(second.at(-1), { summary: true, total: 3, ok: 3, failed: 0 });
    const edges = await s.tablePage('edges', null, 100);
    t.equal(edges.length, 8, `${engine}: 8 edges opened`);
    t.equal(edges.filter((e) => e[5] !== null).length, 1, `${engine}: one of them closed`);
    t.same(await s.verifyAudit(), { ok: true, checked: (await s.auditHead()).seq }, `${engine}: verifies`);
    seen.push({
      first,
      second,
      edges,
      names: await s.tablePage('lineage_names', null, 100),
      records: await s.tablePage('records', null, 100),
      templates: await s.tablePage('templates', null, 100),
      audit: await s.auditEntries(0, 100),
    });
  }
  if (seen.length < 2) return;
  t.same(seen[1], seen[0], 'the same edge ids, first spellings, rows and write sets on both engines');
  t.equal(JSON.stringify(seen[1]), JSON.stringify(seen[0]), 'byte for byte');
});

t.test('one write: a key put, deleted and put again, the top id reused, repeated edges and names: the rows its write set names, on both engines', async (t) => {
  const seen: unknown[] = [];
  for (const engine of ENGINES) {
    const s = await stores.open(t, engine, { now: () => new Date('2026-11-30T12:00:00Z') });
    if (s === undefined) return;
    for (const k of ['a', 'b']) await putRecord(s, `88.1/${k}`, '[0]');
    await s.write({ actor: 'tok_1', action: 'lineage.seed', target: 'x' }, async (tx) => {
      await tx.openEdge('88.1/a', '88.2/l-1', 'made', '2026-11-30T12:00:00.000Z', 0);
      await tx.nameIdentifier('88.2/l-1', '88.2/L-1');
      return { result: undefined, payload: 'seed' };
    });
    const out = await s.write(
      { actor: 'tok_1', action: 'bulk.chunk', target: 'x' },
      async (tx) => {
        const versions = [
          await tx.putRecord({ ...testRecordRow('88.1/c', '[1]'), maxAge: 60, expiresAt: 1795000000000, publicJson: '[]' }),
          await tx.deleteRecord('88.1/c', '88.1/C'),
          await tx.putRecord(testRecordRow('88.1/c', '[2]')),
          await tx.deleteRecord('88.1/b', '88.1/B'),
          await tx.putRecord(testRecordRow('88.1/d', '[3]')),
          await tx.putRecord(testRecordRow('88.1/a', '[4]')),
        ];
        const record = await tx.getRecord('88.1/c');
        const since = '2026-11-30T12:00:00.000Z';
        const opened = await tx.openEdges!([
          ['88.1/a', '88.2/l-1', 'made', since, 0],
          ['88.1/a', '88.2/l-2', 'made', since, 0],
          ['88.1/d', '88.2/l-2', 'made', since, 0],
          ['88.1/a', '88.2/l-2', 'made', since, 0],
          ['88.1/a', '88.2/l-2', 'used', since, 0],
        ]);
        await tx.nameIdentifiers!([
          ['88.2/l-1', '88.2/l-1'],
          ['88.2/l-2', '88.2/L-2'],
          ['88.2/l-2', '88.2/l-2'],
          ['88.1/d', '88.1/D'],
        ]);
        const children = await tx.openChildrenMany!([
          ['88.1/a', 'made'],
          ['88.1/d', 'used'],
          ['88.1/a', 'used'],
        ]);
        // A chunk's digest: its version lines in key order (verification recomputes it).
        const lines = [
          ['88.1/A', '[4]'],
          ['88.1/B', null],
          ['88.1/C', '[1]'],
          ['88.1/C', null],
          ['88.1/C', '[2]'],
          ['88.1/D', '[3]'],
        ] as const;
        return { result: { versions, record: record?.valuesJson, opened, children }, payload: lines.map(([h, v]) => versionLine(h, v)).join('\n') };
      },
      { keys: ['88.1/c', '88.1/b', '88.1/d', '88.1/a'] },
    );
    t.same(
      out,
      { versions: [1, 2, 3, 2, 1, 2], record: '[2]', opened: [false, true, true, false, true], children: [['88.2/l-1', '88.2/l-2'], [], ['88.2/l-2']] },
      `${engine}: versions past the write's own, reads see its writes, an edge opened once`,
    );
    t.same(
      (await s.tablePage('records', null, 10)).map((r) => [r[0], r[1], r[4]]),
      [
        ['88.1/a', 1, '[4]'],
        ['88.1/c', 3, '[2]'],
        ['88.1/d', 4, '[3]'],
      ],
      `${engine}: ids as rowids give them (c's top id given again after its delete)`,
    );
    t.same(
      await s.tablePage('lineage_names', null, 10),
      [
        ['88.1/d', '88.1/D'],
        ['88.2/l-1', '88.2/L-1'],
        ['88.2/l-2', '88.2/L-2'],
      ],
      `${engine}: the first spelling stays`,
    );
    t.same(await s.verifyAudit(), { ok: true, checked: 4 }, `${engine}: every row as its write set says`);
    const tables: Record<string, unknown> = {};
    for (const table of ['records', 'record_versions', 'edges', 'lineage_names'] as const) tables[table] = await s.tablePage(table, null, 100);
    seen.push({ out, tables, audit: await s.auditEntries(0, 100) });
  }
  if (seen.length < 2) return;
  t.equal(JSON.stringify(seen[1]), JSON.stringify(seen[0]), 'byte for byte on both engines');
});

t.test('postgres: two engines on one database write one record at once: each batch reads it after the lock, no version twice', async (t) => {
  const c = await stores.cluster();
  if (c === undefined) return;
  const url = await c.createDatabase();
  const a = await stores.open(t, 'postgres', { url });
  const b = await stores.open(t, 'postgres', { url });
  if (a === undefined || b === undefined) return;
  const put = (s: StoreEngine, n: number) =>
    s.write(
      { actor: 'tok_1', action: 'record.update', target: '88.1/shared' },
      async (tx) => {
        const before = await tx.getRecord('88.1/shared');
        const version = await tx.putRecord(testRecordRow('88.1/shared', `[${n}]`));
        return { result: [before?.version ?? 0, version], payload: versionLine('88.1/SHARED', `[${n}]`) };
      },
      { keys: ['88.1/shared'] },
    );
  // Rounds of writes from both engines at once: the one that waits for the lock must not use what it read before.
  for (let round = 0; round < 10; round++) await Promise.all([1, 2, 3, 4].map((i) => put(i % 2 === 0 ? a : b, round * 10 + i)));
  const versions = (await a.versions('88.1/shared', 0, 100)).map((v) => v.version);
  t.same(
    versions,
    Array.from({ length: 40 }, (_, i) => i + 1),
    'versions 1 to 40, none twice',
  );
  t.equal((await a.getRecord('88.1/shared'))?.version, 40);
  t.same(await a.verifyAudit(), { ok: true, checked: 40 });
});

t.test('postgres: a batch whose last statements fail commits nothing (its COMMIT is pipelined behind them)', async (t) => {
  const c = await stores.cluster();
  if (c === undefined) return;
  const url = await c.createDatabase();
  const batches: number[] = [];
  const s = (await stores.open(t, 'postgres', { url, onBatch: (n) => batches.push(n) }))!;
  const raw = tamperPg(url);
  t.teardown(() => raw.close());
  t.same(await putRecord(s, '88.1/before', '[1]'), { version: 1, seq: 1 });
  // The audit insert is one statement for the whole batch: one poisoned entry fails it, after every write's apply succeeded.
  await raw.exec(`CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    IF NEW.target = '88.1/poison' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$;
    CREATE TRIGGER poison BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION poison()`);
  const outcomes = await Promise.allSettled(['88.1/x1', '88.1/poison', '88.1/x2'].map((k) => putRecord(s, k, '[2]')));
  t.same(
    outcomes.map((o) => o.status),
    ['rejected', 'rejected', 'rejected'],
    'one transaction: every write of the batch is refused',
  );
  for (const k of ['88.1/x1', '88.1/poison', '88.1/x2']) t.equal(await s.getRecord(k), undefined, `${k} was not stored`);
  t.same(await raw.rows('record_versions', { handle_key: '88.1/x1' }), [], 'no version row');
  t.equal((await s.auditHead()).seq, 1, 'the chain head did not move');
  await raw.exec('DROP TRIGGER poison ON audit_log');
  t.same(await putRecord(s, '88.1/after', '[3]'), { version: 1, seq: 2 }, 'the next write takes the next seq');
  t.same(await s.verifyAudit(), { ok: true, checked: 2 });
  t.equal(await s.totalRecords(), 2, 'the counters counted only what was committed');
});

t.test('postgres: a schema 1 database with rows is re-based on its first writable open', async (t) => {
  const c = await stores.cluster();
  if (c === undefined) return;
  const url = await c.createDatabase();
  const raw = tamperPg(url);
  t.teardown(() => raw.close());
  await raw.exec(readFileSync(new URL('../schema/postgres/001_init.sql', import.meta.url), 'utf8'));
  await raw.exec('CREATE TABLE idnode_schema (version integer PRIMARY KEY, file text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
  await raw.insertRow('idnode_schema', { version: 1, file: '001_init.sql' });
  const token = { id: 'tok_a', role: 'registrar', prefixes_json: '["88.1"]', secret_hash: 'a'.repeat(64), label: null, created_at: 'x', revoked_at: null };
  await raw.insertRow('tokens', token);
  for (const key of ['88.1/b', '88.1/a'])
    await raw.insertRow('records', { handle_key: key, handle: key, prefix_key: '88.1', values_json: '[]', version: 1, updated_at: 'x' });
  const payload = JSON.stringify(token);
  const base = { seq: 1, at: '2026-01-01T00:00:00Z', actor: 'cli', action: 'token.create', target: 'tok_a', digest: sha256Hex(payload) };
  const hash = auditHash(GENESIS_HASH, base);
  await raw.insertRow('audit_log', { ...base, prev_hash: GENESIS_HASH, hash });
  await raw.insertRow('audit_payloads', { seq: 1, payload });
  await raw.updateRows('chain_head', { seq: 1, hash }, { id: 1 });

  const s = await stores.open(t, 'postgres', { url });
  if (s === undefined) return;
  t.equal(s.schemaVersion, latestSchemaVersion());
  t.same(
    (await raw.rows('records')).map((r) => [r.handle_key, r.id]).sort(),
    [
      ['88.1/a', 1],
      ['88.1/b', 2],
    ],
    'rows schema 1 wrote are numbered in key order',
  );
  const log = await s.auditPage(0, 10);
  t.match(log[0], { seq: 1, action: 'token.create', rowsDigest: null }, 'the old entry is kept as it was');
  t.match(log.slice(1), [
    { action: 'audit.rebase', actor: 'system', target: 'tokens' },
    { action: 'audit.rebase', target: 'records' },
    { action: 'audit.rebase', target: 'audit_payloads' },
  ]);
  t.same(await s.verifyAudit(), { ok: true, checked: 4 });
  t.same(
    await raw.partitions('audit_log'),
    [
      [1, 10_000_001, 4],
      [10_000_001, 20_000_001, 0],
    ],
    'schema 3 moved the log into its range partition; the head is in the last one, so the next is made',
  );
  t.same(
    (await raw.partitions('audit_payloads')).map(([, , n]) => n),
    [1, 0],
  );
  await raw.updateRows('tokens', { role: 'admin' }, { id: 'tok_a' });
  t.match(await s.verifyAudit(), { ok: false, firstBroken: { seq: 2, table: 'tokens', key: '["tok_a"]', reason: /altered/ } });
  await raw.updateRows('tokens', { role: 'registrar' }, { id: 'tok_a' });
  // The chain goes on after the re-base; a new record takes the next id.
  t.same(await putRecord(s, '88.1/c', '[]'), { version: 1, seq: 5 });
  t.equal((await raw.rows('records', { handle_key: '88.1/c' }))[0]?.id, 3);
  t.same(await s.verifyAudit(), { ok: true, checked: 5 });
  await s.close();
  const again = await stores.open(t, 'postgres', { url });
  t.equal((await again!.auditHead()).seq, 5, 'a covered log is not re-based again');
});

t.test('postgres: concurrent writes share one transaction, each with its own seq and result; a failing one rejects alone', async (t) => {
  const batches: number[] = [];
  let commits = 0;
  const s = await stores.open(t, 'postgres', { onBatch: (n) => batches.push(n) });
  if (s === undefined) return;
  s.onCommit(() => void commits++);
  const writes = Array.from({ length: 20 }, (_, i) =>
    s.write({ actor: `w${i}`, action: 'record.create', target: `88.1/k${i}` }, async (tx) => {
      const version = await tx.putRecord(testRecordRow(`88.1/k${i}`, `[${i}]`));
      if (i === 7) throw new Error('apply failed');
      if (i === 12) throw new IdnError('IDN_HANDLE_EXISTS', '88.1/K12 exists');
      return { result: { i, seq: tx.seq, at: tx.at, version }, payload: versionLine(`88.1/K${i}`, `[${i}]`) };
    }),
  );
  const settled = await Promise.allSettled(writes);
  t.same(batches, [18], 'one transaction carried every write that succeeded');
  t.equal(commits, 1, 'own-commit listeners run once for the transaction');
  t.match(settled[7], { status: 'rejected', reason: { code: 'IDN_INTERNAL' } });
  t.match(settled[12], { status: 'rejected', reason: { code: 'IDN_HANDLE_EXISTS' } }, 'an IdnError keeps its code');
  const ok = settled.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<{ i: number; seq: number; version: number }>).value);
  t.same(
    ok.map((r) => r.seq),
    Array.from({ length: 18 }, (_, i) => i + 1),
    'seq per write, in submission order, no gap where a write failed',
  );
  t.same(
    ok.map((r) => r.i),
    [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19],
  );
  t.equal(await s.getRecord('88.1/k7'), undefined, "the failed write's row is rolled back");
  t.equal(await s.getRecord('88.1/k12'), undefined);
  t.equal((await s.getRecord('88.1/k13'))?.valuesJson, '[13]');
  const log = await s.auditPage(0, 100);
  t.same(
    log.map((e) => e.actor),
    ok.map((r) => `w${r.i}`),
    'one audit entry per write, its own actor',
  );
  t.same(
    (await s.changesAfter(0, 100)).map((c) => [c.id, c.auditSeq]),
    ok.map((r, n) => [n + 1, r.seq]),
    'feed ids contiguous',
  );
  t.equal(await s.totalRecords(), 18);
  t.same(await s.verifyAudit(), { ok: true, checked: 18 });
  // With nothing else waiting, a write runs alone and a failure rolls back just it.
  await t.rejects(
    s.write({ actor: 'x', action: 'record.create', target: '88.1/solo' }, async (tx) => {
      await tx.putRecord(testRecordRow('88.1/solo', '[]'));
      throw new Error('no');
    }),
    { code: 'IDN_INTERNAL' },
  );
  t.same(await putRecord(s, '88.1/after', '[]'), { version: 1, seq: 19 });
});

t.test('postgres: two engines (two processes) writing at once keep one gapless, verifiable chain and right counts', async (t) => {
  const a = await stores.open(t, 'postgres');
  if (a === undefined) return;
  const b = await stores.open(t, 'postgres', { url: a.path });
  const one = b!;
  const keys = (n: number) => Array.from({ length: n }, (_, i) => `88.${1 + (i % 3)}/k${i % 40}`);
  // Creates, updates and deletes of 40 keys over three prefixes, from both engines at once.
  const work = (s: StoreEngine, tag: string) =>
    Promise.all(
      keys(120).map((key, i) =>
        i % 5 === 4
          ? s.write({ actor: tag, action: 'record.delete', target: key }, async (tx) => {
              if ((await tx.getRecord(key)) === undefined) return { result: 0, payload: null };
              return { result: await tx.deleteRecord(key, key.toUpperCase()), payload: versionLine(key.toUpperCase(), null) };
            })
          : putRecord(s, key, `["${tag}${i}"]`, key.slice(0, key.indexOf('/')), tag),
      ),
    );
  await Promise.all([work(a, 'a'), work(one, 'b')]);
  const log = await a.auditPage(0, 1000);
  t.same(
    log.map((e) => e.seq),
    Array.from({ length: log.length }, (_, i) => i + 1),
    'seq contiguous',
  );
  t.ok(log.some((e) => e.actor === 'a') && log.some((e) => e.actor === 'b'), 'both engines wrote');
  t.same(await one.verifyAudit(), { ok: true, checked: log.length });
  const feed = await a.changesAfter(0, 1000);
  t.same(
    feed.map((c) => c.id),
    Array.from({ length: feed.length }, (_, i) => i + 1),
    'feed ids contiguous',
  );
  let total = 0;
  for (const prefix of ['88.1', '88.2', '88.3']) {
    const listed = (await a.listRecordHandles(prefix, 1000, 0)).length;
    total += listed;
    t.equal(await one.countRecords(prefix), listed, `the counter of ${prefix} matches its rows`);
  }
  t.equal(await a.totalRecords(), total);
  t.equal(await a.countRecordsUnder('88'), total, 'every prefix lies under 88');
  t.equal(await a.countRecordsUnder('88.1'), await a.countRecords('88.1'));
  for (const key of ['88.1/k0', '88.2/k1', '88.3/k2']) {
    const versions = (await a.versions(key, 0, 1000)).map((v) => v.version);
    t.same(
      versions,
      Array.from({ length: versions.length }, (_, i) => i + 1),
      `versions of ${key} contiguous`,
    );
  }
});

t.test('postgres: engines opening a new database at once apply each migration once; clear errors when it cannot open', async (t) => {
  const c = await stores.cluster();
  if (c === undefined) return;
  const url = await c.createDatabase();
  const many = await Promise.all(Array.from({ length: 4 }, () => stores.open(t, 'postgres', { url })));
  t.same(
    many.map((s) => s!.schemaVersion),
    Array(4).fill(latestSchemaVersion()),
    'the SQLite schema version with the same tables (the latest: PostgreSQL has every column SQLite has)',
  );
  const raw = tamperPg(url);
  t.teardown(() => raw.close());
  t.same(
    (await raw.schemaRows()).map((r) => r.version),
    Array.from({ length: latestPgSchemaVersion() }, (_, i) => i + 1),
  );
  await putRecord(many[0]!, '88.1/a', '[]');
  t.equal((await many[3]!.getRecord('88.1/a'))?.version, 1);
  const ro = await stores.open(t, 'postgres', { url, readonly: true });
  t.equal(await ro!.totalRecords(), 1);
  await t.rejects(putRecord(ro!, '88.1/b', '[]'), { code: 'IDN_INTERNAL', message: /read-only/ });
  await t.rejects(connectStore({ engine: 'postgres', url: await c.createDatabase(), readonly: true }), {
    code: 'IDN_INTERNAL',
    message: /schema v0, older than this idnode's v\d+; start a node on it once/,
  });
  await t.rejects(connectStore({ engine: 'postgres', url: `postgres://postgres@127.0.0.1:${c.port}/no_such_db` }), {
    code: 'IDN_INTERNAL',
    message: /cannot open database postgres:\/\/postgres@127\.0\.0\.1:\d+\/no_such_db/,
  });
  await t.rejects(connectStore({ engine: 'postgres' }), { code: 'IDN_INTERNAL', message: /needs store.url/ });
  const before = await raw.connections();
  const closed = await connectStore({ engine: 'postgres', url });
  await closed.close();
  t.notOk(closed.isOpen());
  await t.rejects(closed.getRecord('88.1/a'), 'reads after close fail');
  await t.rejects(putRecord(closed, '88.1/c', '[]'), { code: 'IDN_UNAVAILABLE' });
  t.equal(await raw.connections(), before, 'close ends its connections');
});

t.test('postgres: a read URL serves cache-miss reads, history, lineage and listing', async (t) => {
  const c = await stores.cluster();
  if (c === undefined) return;
  const url = await c.createDatabase();
  const other = await c.createDatabase();
  // A stand-in standby: another database, so it shows which reads go where.
  const s = await stores.open(t, 'postgres', { url, readUrl: other });
  const replica = await stores.open(t, 'postgres', { url: other });
  await putRecord(replica!, '88.1/a', '["replica"]');
  await putRecord(s!, '88.1/a', '["primary"]');
  t.equal((await s!.answerRow('88.1/a'))?.[1], '["replica"]', 'a cache miss reads the standby');
  t.equal((await s!.versions('88.1/a', 0, 10))[0]?.valuesJson, '["replica"]', 'history too');
  t.same(await s!.listRecordHandles('88.1', 10, 0), ['88.1/A']);
  t.equal((await s!.getRecord('88.1/a'))?.valuesJson, '["primary"]', 'what a write decides on reads the primary');
  t.equal(await s!.changesHead(), 1, 'the change feed is the primary');
});

t.test('postgres: a server that goes away answers 503 (IDN_UNAVAILABLE), and the engine recovers when it is back', async (t) => {
  const s = await stores.open(t, 'postgres');
  if (s === undefined) return;
  const c = (await stores.cluster())!;
  await putRecord(s, '88.1/a', '[1]');
  c.stop();
  t.teardown(() => c.start());
  await t.rejects(putRecord(s, '88.1/a', '[2]'), { code: 'IDN_UNAVAILABLE' });
  await t.rejects(s.getRecord('88.1/a'), { code: 'IDN_UNAVAILABLE' });
  c.start();
  t.same(await putRecord(s, '88.1/a', '[3]'), { version: 2, seq: 2 }, 'nothing of the failed write was kept');
  t.same(await s.verifyAudit(), { ok: true, checked: 2 });

  // A crash (kill -9 of the postmaster): acknowledged writes survive its recovery.
  c.kill();
  await t.rejects(putRecord(s, '88.1/a', '[4]'), { code: 'IDN_UNAVAILABLE' });
  c.start();
  t.same(await putRecord(s, '88.1/a', '[5]'), { version: 3, seq: 3 });
  t.equal((await s.getRecord('88.1/a'))?.valuesJson, '[5]');
  t.same(await s.verifyAudit(), { ok: true, checked: 3 });
});
