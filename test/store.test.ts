import t from 'tap';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { auditHash, GENESIS_HASH, latestSchemaVersion, openStore, versionLine } from '../src/store/index.js';
import { attacker, tamper, writeV1Database } from './tamper.js';
import { tempDir } from './helpers.js';
import { ENGINES, storeOpener } from './pg.js';

const stores = storeOpener(t);

t.test('opens in WAL, applies migrations once, keeps data across reopen', async (t) => {
  const path = join(tempDir(t), 'sub', 'a.db');
  const s = openStore(path);
  const file = tamper(path);
  t.equal(file.journalMode(), 'wal');
  file.close();
  t.equal(s.schemaVersion, 6);
  t.equal(latestSchemaVersion(), 6);
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
  t.equal(again.schemaVersion, 6);
  t.equal((await again.getRecord('88.1/a'))?.handle, '88.1/A');
  t.equal((await again.getRecord('88.1/a'))?.version, 1);
  await again.close();
  const ro = openStore(path, { readonly: true });
  t.equal(await ro.totalRecords(), 1);
  await ro.close();
});

t.test('a v1 database migrates to the latest with its data; read-only refuses an old schema', async (t) => {
  const path = join(tempDir(t), 'old.db');
  writeV1Database(path, readFileSync(new URL('../schema/001_init.sql', import.meta.url), 'utf8'));
  t.throws(() => openStore(path, { readonly: true }), { code: 'IDN_INTERNAL', message: /schema v1, older than this idnode's v6; start a node on it once/ });
  const s = openStore(path);
  t.equal(s.schemaVersion, 6);
  t.equal((await s.getRecord('88.1/a'))?.handle, '88.1/A');
  t.same(await s.verifyAudit(), { ok: true, checked: 0 });
  await s.close();
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
    const row = (key: string, values: string) => ({
      handleKey: key,
      handle: key.toUpperCase(),
      prefixKey: '88.1',
      valuesJson: values,
      publicJson: null,
      maxAge: 0,
      expiresAt: null,
      etag: '"e"',
    });
    // Written as the seed writes: versions' lines in key order, then the rest.
    await s.write({ actor: 'seed', action: 'seed', target: 'dir' }, async (tx) => {
      await tx.putRecord(row('88.1/b', '[2]'));
      await tx.putRecord(row('88.1/a', '[1]'));
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
      await tx.putRecord(row('88.1/c', '[1]'));
      return { result: undefined, payload: 'old seed files' };
    });
    t.same(await s.verifyAudit(), { ok: true, checked: 2 });
    // Any other action that writes versions must cover them.
    await s.write({ actor: 'x', action: 'import.legacy', target: 'x' }, async (tx) => {
      await tx.putRecord(row('88.1/d', '[1]'));
      return { result: undefined, payload: 'no versions here' };
    });
    t.match(await s.verifyAudit(), { ok: false, firstBroken: { seq: 3, reason: /wrote record versions its digest does not cover/ } });
  });

const recordRow = (key: string, values: string) => ({
  handleKey: key,
  handle: key.toUpperCase(),
  prefixKey: '88.1',
  valuesJson: values,
  publicJson: null,
  maxAge: 0,
  expiresAt: null,
  etag: '"e"',
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
      await tx.putRecord(recordRow('88.1/a', '[1]'));
      t.equal((await tx.getRecord('88.1/a'))?.valuesJson, '[1]', 'the write sees its own row');
      entered();
      await gate;
      order.push('first');
      return { result: 'first', payload: versionLine('88.1/A', '[1]') };
    });
    const second = s.write({ actor: 'x', action: 'record.create', target: '88.1/b' }, async (tx) => {
      order.push('second');
      t.equal((await tx.getRecord('88.1/a'))?.valuesJson, '[1]', 'the next write starts after the first committed');
      await tx.putRecord(recordRow('88.1/b', '[2]'));
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
      await tx.putRecord(recordRow('88.1/a', '[9]'));
      opened();
      await new Promise<void>((_r, reject) => (fail = reject));
      return { result: undefined, payload: 'never' };
    });
    const after = s.write({ actor: 'x', action: 'record.create', target: '88.1/c' }, async (tx) => {
      await tx.putRecord(recordRow('88.1/c', '[3]'));
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
      await tx.putRecord(recordRow('88.1/a', '[1]'));
      return { result: 1, payload: 'a' };
    });
    await s.close();
    t.equal(await written, 1);
    t.notOk(s.isOpen());
    await t.rejects(s.getRecord('88.1/a'), 'reads after close fail');
  });
