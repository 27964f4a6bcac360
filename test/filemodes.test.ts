import t from 'tap';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { registrar, runCli, sampleValues, startNode, tempDir } from './helpers.js';

// Only the permission bits: owner-only means nothing for group and others.
const mode = (path: string) => statSync(path).mode & 0o777;

t.test('file modes: the database, its -wal and -shm, the session key and escrow exports are owner-only', async (t) => {
  const dir = tempDir(t);
  const db = join(dir, 'made', 'by', 'node', 'idnode.db');
  const c = await startNode(t, { db });
  t.equal(mode(db), 0o600, 'the database file after start');
  t.equal(mode(join(dir, 'made')), 0o700, 'directories the node creates');
  t.equal(mode(join(dir, 'made', 'by', 'node')), 0o700);
  t.ok(existsSync(`${db}.face-secret`), 'the session key file was created at start');
  t.equal(mode(`${db}.face-secret`), 0o600, 'the session key file');
  const reg = await registrar(c);
  t.equal((await c.call('PUT', '/api/handles/88.100.7/MODE-1', { token: reg, body: { values: sampleValues } })).status, 200);
  t.ok(existsSync(`${db}-wal`), 'a write went through the WAL');
  t.equal(mode(`${db}-wal`), 0o600, 'the -wal after a write');
  t.equal(mode(`${db}-shm`), 0o600, 'the -shm');

  const out = join(dir, 'escrow', 'today');
  const r = await runCli(['export', '--db', db, '--out', out]);
  t.equal(r.code, 0, r.err);
  t.equal(mode(join(dir, 'escrow')), 0o700, 'the export folder');
  t.equal(mode(out), 0o700);
  const files = readdirSync(out);
  t.ok(files.length >= 3 && files.includes('manifest.json') && files.includes('records.ndjson'), 'the export wrote its files');
  for (const f of files) t.equal(mode(join(out, f)), 0o600, `escrow ${f}`);

  const restored = join(dir, 'restored', 'idnode.db');
  t.equal((await runCli(['restore', '--from', out, '--db', restored])).code, 0);
  t.equal(mode(restored), 0o600, 'a restored database file');
  t.equal(mode(join(dir, 'restored')), 0o700);
});
