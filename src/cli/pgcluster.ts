/**
 * Throwaway PostgreSQL clusters on this machine: a primary and streaming standbys made with
 * Debian's server binaries (initdb, pg_ctl, pg_basebackup). `idnode demo --postgres` runs on
 * them, and the multi-node tests start, kill and promote them. Local trust authentication on
 * 127.0.0.1 and a unix socket in the cluster's directory: for demos and tests, not production.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, appendFileSync, chmodSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where the server binaries are: PATH, else Debian's /usr/lib/postgresql/<newest>/bin. */
export function pgBinDir(): string | undefined {
  // The directory of the real initdb: a PATH entry may hold a lone symlink to it.
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir !== '' && existsSync(join(dir, 'initdb'))) return dirname(realpathSync(join(dir, 'initdb')));
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(root, versions[0]!, 'bin') : undefined;
}

/** initdb refuses to run as root: then every server command runs as the `postgres` user. */
function asOwner(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (line === undefined) throw new Error('running as root needs a `postgres` user to own the cluster (initdb refuses root): useradd --system postgres');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

async function pg(bin: string, tool: string, args: string[]): Promise<string> {
  const owner = asOwner();
  const file = join(bin, tool);
  try {
    const { stdout } = await run(file, args, {
      ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
      env: { ...process.env, LC_ALL: 'C' },
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${tool} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
}

export interface PgServer {
  /** The data directory. */
  readonly dir: string;
  readonly port: number;
  /** A URL for database `db` as the superuser `postgres`. */
  url(db?: string): string;
  /** Stops with the given pg_ctl mode (`fast` rolls back open transactions; `immediate` is a crash). */
  stop(mode?: 'smart' | 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
  /** kill -9 of the postmaster (its children exit on their own). */
  kill(): void;
  /** Promotes a standby to primary and waits until it accepts writes. */
  promote(): Promise<void>;
  /** Runs SQL through psql (for set-up only: creating databases, pausing replay). */
  sql(statement: string, db?: string): Promise<string>;
}

export interface PgClusterOptions {
  /** Directory that will hold the clusters' data directories (created; default a new temp dir). */
  root?: string;
  /** Turn fsync off: for tests, where a crash of the machine loses nothing of value. */
  fast?: boolean;
  /**
   * When `root` already holds a primary (a cluster stopped with `primary.stop()`, not
   * destroyed), start it on a new free port instead of running initdb: bench fixtures that
   * take minutes to build are kept between runs. `fast` applies only when initdb runs.
   */
  reuse?: boolean;
}

function server(bin: string, dir: string, port: number): PgServer {
  const self: PgServer = {
    dir,
    port,
    url: (db = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${db}`,
    async stop(mode = 'fast') {
      if (!existsSync(join(dir, 'postmaster.pid'))) return;
      await pg(bin, 'pg_ctl', ['-D', dir, '-m', mode, '-w', '-t', '60', 'stop']);
    },
    async start() {
      await pg(bin, 'pg_ctl', ['-D', dir, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start']);
    },
    kill() {
      const pidFile = join(dir, 'postmaster.pid');
      if (!existsSync(pidFile)) return;
      const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    },
    async promote() {
      await pg(bin, 'pg_ctl', ['-D', dir, '-w', '-t', '60', 'promote']);
    },
    async sql(statement, db = 'postgres') {
      return pg(bin, 'psql', [
        '-X',
        '-q',
        '-A',
        '-t',
        '-v',
        'ON_ERROR_STOP=1',
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        'postgres',
        '-d',
        db,
        '-c',
        statement,
      ]);
    },
  };
  return self;
}

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => ok(port));
    });
  });
}

/**
 * A primary and any number of streaming standbys. `standby({ sync: true })` makes the first
 * standby synchronous (`remote_apply`): an acknowledged commit is on it and visible there.
 */
export interface PgCluster {
  readonly root: string;
  readonly primary: PgServer;
  standby(opts?: { sync?: boolean }): Promise<PgServer>;
  /** Stops every server (fast) and removes the directories. */
  destroy(): Promise<void>;
}

export async function createPgCluster(opts: PgClusterOptions = {}): Promise<PgCluster> {
  const bin = pgBinDir();
  if (bin === undefined)
    throw new Error('PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or under /usr/lib/postgresql; install the `postgresql` package');
  const owner = asOwner();
  const root = opts.root ?? mkdtempSync(join(tmpdir(), 'idnode-pg-'));
  mkdirSync(root, { recursive: true });
  // The postgres user must reach the data directories through this one.
  chmodSync(root, 0o755);
  if (owner) chownSync(root, owner.uid, owner.gid);

  const primaryDir = join(root, 'primary');
  const port = await freePort();
  if (opts.reuse === true && existsSync(join(primaryDir, 'PG_VERSION'))) {
    // A server left running by an interrupted run still holds the directory (and its old port).
    await server(bin, primaryDir, port)
      .stop('fast')
      .catch(() => {});
    const conf = join(primaryDir, 'postgresql.conf');
    writeFileSync(conf, readFileSync(conf, 'utf8').replace(/^port = \d+$/m, `port = ${port}`));
    const primary = server(bin, primaryDir, port);
    await primary.start();
    return clusterOf(bin, root, primary);
  }
  await pg(bin, 'initdb', ['-D', primaryDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-instructions']);
  appendFileSync(
    join(primaryDir, 'postgresql.conf'),
    [
      `port = ${port}`,
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${primaryDir}'`,
      'wal_level = replica',
      'max_wal_senders = 10',
      'max_replication_slots = 10',
      'hot_standby = on',
      'max_connections = 200',
      opts.fast ? 'fsync = off' : '',
      opts.fast ? 'full_page_writes = off' : '',
      '',
    ].join('\n'),
  );
  appendFileSync(join(primaryDir, 'pg_hba.conf'), 'host replication postgres 127.0.0.1/32 trust\n');
  const primary = server(bin, primaryDir, port);
  await primary.start();
  return clusterOf(bin, root, primary);
}

function clusterOf(bin: string, root: string, primary: PgServer): PgCluster {
  const servers: PgServer[] = [primary];
  const port = primary.port;
  let standbys = 0;
  return {
    root,
    primary,
    async standby(sopts = {}) {
      standbys++;
      const name = `standby${standbys}`;
      const dir = join(root, name);
      const sport = await freePort();
      await pg(bin, 'pg_basebackup', [
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        'postgres',
        '-D',
        dir,
        '-R',
        '-X',
        'stream',
        // Checkpoint at once: a spread checkpoint makes the copy wait minutes on an idle primary.
        '-c',
        'fast',
        '-d',
        `application_name=${name}`,
      ]);
      appendFileSync(join(dir, 'postgresql.conf'), `port = ${sport}\nunix_socket_directories = '${dir}'\n`);
      const s = server(bin, dir, sport);
      await s.start();
      servers.push(s);
      if (sopts.sync) {
        await primary.sql(`ALTER SYSTEM SET synchronous_standby_names = '${name}'`);
        await primary.sql(`ALTER SYSTEM SET synchronous_commit = 'remote_apply'`);
        await primary.sql('SELECT pg_reload_conf()');
      }
      return s;
    },
    async destroy() {
      for (const s of servers) {
        try {
          await s.stop('immediate');
        } catch {
          s.kill();
        }
      }
      rmSync(root, { recursive: true, force: true });
    },
  };
}
