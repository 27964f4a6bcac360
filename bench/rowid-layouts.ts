// The in-process experiment behind bench/README.md "Scale", "One descent": records as schema v8
// keeps them (A: rowid id, then the unique handle_key index) against rowid = hash of the key (B,
// a layout tried and not adopted), with better-sqlite3 alone and the node's pragmas. Not part of `npm run bench`.
//   DIR=/some/dir node dist/bench/rowid-layouts.js lookup A 10000000   (builds DIR/A-10000000.db once)
//   DIR=/some/dir node dist/bench/rowid-layouts.js insert B 1000000    (100k new records into a copy)
// WARM and M set the warm-up and timed lookups (1.5M, 300k). The files are 1.1 GB per 1M records.
import Database from 'better-sqlite3';
import { existsSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { execSync } from 'node:child_process';

/** cyrb53 (seed 0) cut to 52 bits, so the key fits a JS number exactly: the rowid layout B tries. */
function rk(key: string): number {
  let h1 = 0xdeadbeef,
    h2 = 0x41c6ce57;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (h2 & 0xfffff) + (h1 >>> 0);
}
const COLS = `handle_key TEXT NOT NULL, handle TEXT NOT NULL, prefix_key TEXT NOT NULL, values_json TEXT NOT NULL, public_json TEXT, version INTEGER NOT NULL, updated_at TEXT NOT NULL, max_age INTEGER, expires_at INTEGER, etag TEXT`;
const VALS = (i: string) =>
  `'88.100.1/pump-2026-' || printf('%09d', ${i}), '88.100.1/PUMP-2026-' || printf('%09d', ${i}), '88.100.1', hex(randomblob(440)), NULL, 1, '2026-11-25T00:00:00Z', 86400, NULL, 'W/"abcdefabcdefabcdefabcdefab"'`;
const key = (i: number) => `88.100.1/pump-2026-${String(i).padStart(9, '0')}`;
const dir = process.env.DIR ?? '.';
function build(layout: string, n: number): string {
  const path = `${dir}/${layout}-${n}.db`;
  if (existsSync(path)) return path;
  const t0 = performance.now();
  const db = new Database(path + '.tmp');
  db.pragma('journal_mode = OFF');
  db.pragma('synchronous = OFF');
  db.pragma('cache_size = -262144');
  db.function('idn_rk', { deterministic: true }, rk);
  if (layout === 'A') {
    db.exec(`CREATE TABLE records (id INTEGER PRIMARY KEY, ${COLS.replace('handle_key TEXT NOT NULL', 'handle_key TEXT NOT NULL UNIQUE')});
      CREATE INDEX records_by_prefix ON records (prefix_key, handle_key);
      WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM s WHERE i < ${n - 1})
      INSERT INTO records SELECT i + 1, ${VALS('i')} FROM s;`);
  } else {
    db.exec(`CREATE TABLE records (rk INTEGER PRIMARY KEY, id INTEGER NOT NULL, ${COLS});
      CREATE TEMP TABLE o (rk INTEGER PRIMARY KEY, i INTEGER NOT NULL);`);
    // (rk, i) sorted in JS, so the temp table and then records are written in rowid order.
    const ks = new Float64Array(n),
      is = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      ks[i] = rk(key(i));
      is[i] = i;
    }
    is.sort((a, b) => ks[a]! - ks[b]!);
    const ins = db.prepare('INSERT OR IGNORE INTO o VALUES (?, ?)');
    db.transaction(() => {
      for (let j = 0; j < n; j++) ins.run(ks[is[j]!], is[j]);
    })();
    // 8 bytes fewer than A: the extra id column would otherwise tip these rows from 4 to 3 a page.
    db.exec(`INSERT INTO records SELECT o.rk, o.i + 1, ${VALS('o.i').replace('randomblob(440)', 'randomblob(436)')} FROM o;
      CREATE UNIQUE INDEX records_by_key ON records (handle_key);
      CREATE UNIQUE INDEX records_by_id ON records (id);
      CREATE INDEX records_by_prefix ON records (prefix_key, handle_key);`);
  }
  db.close();
  execSync(`mv ${path}.tmp ${path}`);
  console.log(`built ${path} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return path;
}
function open(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('wal_autocheckpoint = 10000');
  db.pragma('busy_timeout = 5000');
  db.pragma('cache_size = -65536');
  db.pragma(`mmap_size = ${2 * 1024 ** 3}`);
  return db;
}
function lookups(layout: string, n: number, path: string): number {
  execSync(`dd if=${path} of=/dev/null bs=16M 2>/dev/null`);
  const db = open(path);
  let get: (k: string) => unknown;
  if (layout === 'A') {
    const s = db.prepare('SELECT handle, values_json, public_json, max_age, expires_at, etag FROM records WHERE handle_key = ?').raw();
    get = (k) => s.get(k);
  } else {
    const s = db.prepare('SELECT handle_key, handle, values_json, public_json, max_age, expires_at, etag FROM records WHERE rk = ?').raw();
    const f = db.prepare('SELECT handle, values_json, public_json, max_age, expires_at, etag FROM records WHERE handle_key = ?').raw();
    get = (k) => {
      const r = s.get(rk(k)) as unknown[] | undefined;
      return r !== undefined && r[0] === k ? r : f.get(k);
    };
  }
  let miss = 0;
  for (let j = 0; j < Number(process.env.WARM ?? 1_500_000); j++) if (get(key(Math.floor(Math.random() * n))) === undefined) miss++;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const M = Number(process.env.M ?? 300_000);
  for (let j = 0; j < M; j++) if (get(key(Math.floor(Math.random() * n))) === undefined) miss++;
  const us = ((performance.now() - t0) * 1000) / M;
  const c = process.cpuUsage(c0);
  console.log(`${layout} ${n}: ${us.toFixed(2)} µs/lookup (user ${(c.user / M).toFixed(2)}, sys ${(c.system / M).toFixed(2)}), misses ${miss}`);
  db.close();
  return us;
}
function inserts(layout: string, n: number, path: string): void {
  execSync(`cp ${path} ${path}.ins`);
  const db = open(path + '.ins');
  const CH = 1000;
  let ins: (k: string, h: string, v: string) => unknown;
  if (layout === 'A') {
    const s = db.prepare(
      `INSERT INTO records (handle_key, handle, prefix_key, values_json, version, updated_at, max_age, etag) VALUES (?, ?, '88.100.1', ?, 1, 'x', 86400, 'W/"abcdefabcdefabcdefabcdefab"')`,
    );
    ins = (k, h, v) => s.run(k, h, v);
  } else {
    const s = db.prepare(
      `INSERT INTO records (rk, id, handle_key, handle, prefix_key, values_json, version, updated_at, max_age, etag) VALUES (?, (SELECT ifnull(max(id), 0) + 1 FROM records), ?, ?, '88.100.1', ?, 1, 'x', 86400, 'W/"abcdefabcdefabcdefabcdefab"')`,
    );
    ins = (k, h, v) => s.run(rk(k), k, h, v);
  }
  const v = 'x'.repeat(880);
  const tx = db.transaction((from: number) => {
    for (let i = from; i < from + CH; i++) ins(key(i), key(i).toUpperCase(), v);
  });
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let from = n; from < n + 100_000; from += CH) tx(from);
  const s = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  console.log(`${layout} ${n} insert 100k in chunks of ${CH}: ${(100_000 / s).toFixed(0)} rec/s, CPU ${((c.user + c.system) / 1e5).toFixed(1)} µs/rec`);
  db.close();
  for (const x of ['', '-wal', '-shm']) rmSync(path + '.ins' + x, { force: true });
}
const [what, layout = 'A', n = '1000000'] = process.argv.slice(2);
const path = build(layout, Number(n));
if (what === 'lookup') lookups(layout, Number(n), path);
if (what === 'insert') inserts(layout, Number(n), path);
