/**
 * Throwaway PostgreSQL clusters for tests: a real server per test file (initdb once per machine
 * into a cached template directory, copied per cluster), a fresh database per test. Runs the
 * server as the `postgres` user when the tests run as root (initdb refuses root). Under `CI` a
 * missing PostgreSQL fails the test; elsewhere the caller skips with the reason.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import type { Test } from 'tap';
import { type ConnectOptions, connectStore, type StoreEngine } from '../src/store/index.js';
import { freePort, pgBinDir } from '../src/cli/pgcluster.js';
import { tempDir } from './helpers.js';

/** The directory holding initdb, pg_ctl and postgres, or undefined when PostgreSQL is not installed. */
function binDir(): string | undefined {
  const env = process.env.IDNODE_PG_BIN;
  // Set: that directory or nothing (so a run can also check how tests behave without PostgreSQL).
  if (env !== undefined) return existsSync(join(env, 'pg_ctl')) ? env : undefined;
  return pgBinDir();
}

const isRoot = process.getuid?.() === 0;

/** Runs a PostgreSQL tool as the user the server runs as. */
function runAsServerUser(bin: string, args: string[]): string {
  const [cmd, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function ownByServerUser(dir: string): void {
  if (!isRoot) return;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  chownSync(dir, uid, gid);
}

/**
 * The initdb'd template data directory, made once per machine (initdb costs seconds; a copy
 * costs milliseconds). Made under a temporary name and renamed, so parallel test files that
 * race to make it never see half of one.
 */
function templateDir(bin: string): string {
  const version = /\d+(\.\d+)?/.exec(execFileSync(join(bin, 'pg_ctl'), ['--version'], { encoding: 'utf8' }))?.[0] ?? 'x';
  const dir = join(tmpdir(), `idnode-pg-template-${process.getuid?.() ?? 'u'}-${version}`);
  if (existsSync(join(dir, 'PG_VERSION'))) return dir;
  const work = mkdtempSync(join(tmpdir(), 'idnode-pg-initdb-'));
  ownByServerUser(work);
  runAsServerUser(join(bin, 'initdb'), ['-D', join(work, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  try {
    renameSync(join(work, 'data'), dir);
  } catch {
    // Another test file made it first: use theirs.
  }
  rmSync(work, { recursive: true, force: true });
  return dir;
}

function childrenOf(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map(Number);
}

/** Whether `pid` still runs (a zombie, exited but not yet reaped, does not). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The PID of the postmaster of the server on `dataDir` (from its postmaster.pid). */
export function postmasterPid(dataDir: string): number {
  return Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
}

/**
 * kill -STOP of a postmaster and every process it started: to its clients, a machine that froze
 * (connections stay open, nothing answers). Returns the thaw (kill -CONT), which may be called
 * any number of times and runs at exit too, so no test leaves a frozen server behind. Tests run
 * as root signal the servers the `postgres` user runs.
 */
export function freeze(postmaster: number): () => void {
  // The postmaster first: stopped, it starts no process that would escape the freeze.
  process.kill(postmaster, 'SIGSTOP');
  const children = childrenOf(postmaster);
  const signal = (pid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // Exited meanwhile.
    }
  };
  for (const pid of children) signal(pid, 'SIGSTOP');
  let frozen = true;
  const thaw = () => {
    if (!frozen) return;
    frozen = false;
    process.removeListener('exit', thaw);
    for (const pid of [...children, postmaster]) signal(pid, 'SIGCONT');
  };
  process.once('exit', thaw);
  return thaw;
}

export interface PgCluster {
  /** The superuser URL of the `postgres` database. */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** A new empty database (from template0) and its URL. */
  createDatabase(): Promise<string>;
  /** The PID of the postmaster (from postmaster.pid). */
  pid(): number;
  /** Stops the server cleanly (fast shutdown). */
  stop(): void;
  /** Starts it again after stop() or kill(). */
  start(): void;
  /** kill -9 of the postmaster: what a crash looks like to clients. */
  kill(): void;
}

/** Why PostgreSQL cannot be used here, or undefined when it can. */
export function pgMissing(): string | undefined {
  if (binDir() === undefined) return 'PostgreSQL is not installed (no pg_ctl on PATH or in /usr/lib/postgresql/*/bin; set IDNODE_PG_BIN)';
  if (isRoot && spawnSync('id', ['-u', 'postgres']).status !== 0) return 'running as root but there is no `postgres` user to run the server as';
  return undefined;
}

/**
 * Starts a cluster for this test (file), torn down with it; undefined (and the test skipped)
 * when PostgreSQL is missing, except under CI where that fails.
 */
export async function pgCluster(t: Test, settings: { fsync?: boolean } = {}): Promise<PgCluster | undefined> {
  const missing = pgMissing();
  if (missing !== undefined) {
    if (process.env.CI) t.fail(`PostgreSQL is required under CI: ${missing}`);
    else void t.skip(`PostgreSQL tests skipped: ${missing}`, () => undefined);
    return undefined;
  }
  const bin = binDir()!;
  const template = templateDir(bin);
  const root = mkdtempSync(join(tmpdir(), 'idnode-pg-'));
  ownByServerUser(root);
  const dataDir = join(root, 'data');
  // cp -a keeps the owner and the 0700 mode the server insists on.
  execFileSync('cp', ['-a', template, dataDir]);
  const port = await freePort();
  const options = [
    `-p ${port}`,
    `-k ${root}`,
    "-c listen_addresses='127.0.0.1'",
    // Tests throw the data away: no fsync unless asked (figures). synchronous_commit stays on.
    settings.fsync === true ? '-c fsync=on' : '-c fsync=off -c full_page_writes=off',
    '-c max_connections=200',
    '-c shared_buffers=32MB',
  ].join(' ');
  const pgCtl = (...args: string[]) => runAsServerUser(join(bin, 'pg_ctl'), ['-D', dataDir, ...args]);
  const start = () => void pgCtl('-w', '-t', '60', '-l', join(root, 'log'), '-o', options, 'start');
  let running = false;
  const pid = () => Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  start();
  running = true;
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const admin = postgres(url, { max: 1, onnotice: () => undefined });
  let n = 0;
  const cluster: PgCluster = {
    url,
    port,
    dataDir,
    async createDatabase() {
      const name = `idnode_${++n}`;
      await admin.unsafe(`CREATE DATABASE ${name} TEMPLATE template0`);
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    pid,
    stop() {
      if (!running) return;
      pgCtl('-w', '-m', 'fast', 'stop');
      running = false;
    },
    start() {
      if (running && existsSync(join(dataDir, 'postmaster.pid'))) return;
      start();
      running = true;
    },
    kill() {
      const main = pid();
      const children = childrenOf(main);
      process.kill(main, 'SIGKILL');
      // A restart is refused while the old backends hold the shared memory: they exit once
      // they notice the postmaster is gone; wait for that (bounded).
      const deadline = Date.now() + 30_000;
      for (const p of [main, ...children]) while (alive(p) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      // The killed postmaster may stay a zombie (a container's init that does not reap), which
      // the next start would take for a running server: its lock files go.
      for (const f of [join(dataDir, 'postmaster.pid'), join(root, `.s.PGSQL.${port}.lock`), join(root, `.s.PGSQL.${port}`)]) rmSync(f, { force: true });
      running = false;
    },
  };
  let removed = false;
  /** Synchronous, so it also runs from process 'exit' when tap ends the file before teardowns settle. */
  const remove = () => {
    if (removed) return;
    removed = true;
    try {
      if (existsSync(join(dataDir, 'postmaster.pid'))) pgCtl('-w', '-m', 'immediate', 'stop');
    } catch {
      // Already gone (killed): nothing to stop.
    }
    rmSync(root, { recursive: true, force: true });
  };
  process.once('exit', remove);
  t.teardown(async () => {
    await admin.end({ timeout: 1 }).catch(() => undefined);
    remove();
  });
  return cluster;
}

export type EngineName = 'sqlite' | 'postgres';
/** Every engine the contract suite runs against. */
export const ENGINES: readonly EngineName[] = ['sqlite', 'postgres'];

/**
 * Opens stores of either engine for the tests of one file: a new SQLite file, or a new database
 * on the file's one cluster (started on first use, torn down with `top`). Each store closes with
 * its test. Undefined when PostgreSQL is missing (the cluster's test says why).
 */
export function storeOpener(top: Test) {
  let cluster: Promise<PgCluster | undefined> | undefined;
  return {
    cluster: () => (cluster ??= pgCluster(top)),
    /** A new, empty store (and where it lives: a file path or a postgres:// URL). */
    async open(t: Test, engine: EngineName, opts: Omit<ConnectOptions, 'engine'> = {}): Promise<StoreEngine | undefined> {
      let store: StoreEngine;
      if (engine === 'sqlite') store = await connectStore({ ...opts, engine, path: opts.path ?? join(tempDir(t), 'a.db') });
      else {
        const c = await (cluster ??= pgCluster(top));
        if (c === undefined) return undefined;
        store = await connectStore({ ...opts, engine, url: opts.url ?? (await c.createDatabase()) });
      }
      t.teardown(() => store.close());
      return store;
    },
  };
}
