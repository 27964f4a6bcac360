#!/usr/bin/env node
/**
 * `npm ci`/`npm install` runs this after the dependencies are in (package.json `postinstall`).
 * SQLite as better-sqlite3 builds it caps memory-mapped I/O at 2 GiB − 64 KiB
 * (SQLITE_MAX_MMAP_SIZE): pages of a larger database file are read with a read() call each,
 * so a 10M-record file (11 GB) answered a cold lookup at 0.78× the rate of a 1M-record one
 * (bench/README.md, "Scale"). This rebuilds better-sqlite3 from its bundled source with the cap
 * at 256 GiB (`sqlite.mmapBytes` then decides how much is mapped). It does nothing when the
 * installed build already has that cap, and if the build fails it puts the previous binary
 * back and says so: the node works as before, with the 2 GiB cap.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const CAP = '0x4000000000';
const require = createRequire(import.meta.url);

/** The SQLITE_MAX_MMAP_SIZE the installed build reports, read in a child process (the binary may be replaced). */
function installedCap() {
  const probe = `const D = require('better-sqlite3'); const db = new D(':memory:');
    const o = db.pragma('compile_options').map((r) => r.compile_options).find((s) => s.startsWith('MAX_MMAP_SIZE='));
    process.stdout.write(o ? o.slice('MAX_MMAP_SIZE='.length) : 'default');`;
  const r = spawnSync(process.execPath, ['-e', probe], { cwd: process.cwd(), encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

let pkg;
try {
  pkg = dirname(require.resolve('better-sqlite3/package.json'));
} catch {
  process.exit(0); // not installed (a partial install): nothing to rebuild
}
if (process.env.IDNODE_SKIP_SQLITE_REBUILD === '1' || installedCap() === CAP) process.exit(0);

const binary = join(pkg, 'build', 'Release', 'better_sqlite3.node');
const keep = mkdtempSync(join(tmpdir(), 'idnode-sqlite-'));
const saved = join(keep, 'better_sqlite3.node');
if (existsSync(binary)) copyFileSync(binary, saved);
process.stdout.write(`idnode: rebuilding better-sqlite3 with SQLITE_MAX_MMAP_SIZE=${CAP} (about a minute)\n`);
const env = {
  ...process.env,
  CFLAGS: `${process.env.CFLAGS ?? ''} -DSQLITE_MAX_MMAP_SIZE=${CAP}`.trim(),
  // prebuild-install would fetch a prebuilt binary with the default cap where it can.
  npm_config_build_from_source: 'true',
};
const npm = process.env.npm_execpath;
const r = npm
  ? spawnSync(process.execPath, [npm, 'rebuild', 'better-sqlite3'], { stdio: 'inherit', env })
  : spawnSync('npm', ['rebuild', 'better-sqlite3'], { stdio: 'inherit', env });
if (r.status !== 0 || installedCap() !== CAP) {
  if (existsSync(saved)) {
    mkdirSync(dirname(binary), { recursive: true });
    copyFileSync(saved, binary);
  }
  process.stderr.write(
    'idnode: better-sqlite3 could not be rebuilt with the larger mmap cap; the previous build is kept ' +
      '(a database file past 2 GiB is then read with read() calls past its first 2 GiB)\n',
  );
}
rmSync(keep, { recursive: true, force: true });
