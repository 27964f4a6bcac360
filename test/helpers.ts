/** Test helpers: a real node (real SQLite file, real HTTP on port 0) per test. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { type AddressInfo, connect, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import tap, { type Test } from 'tap';
import { main } from '../src/cli/main.js';
import { type Config, loadConfig } from '../src/config.js';
import { createNode, type IdNode, type NodeOptions, openRegistry, type Registry } from '../src/main.js';
import { freePort } from '../src/cli/pgcluster.js';
import { SEEDS_DIR } from '../src/paths.js';
import { type PgCluster, pgCluster } from './pg.js';

export const ADMIN = 'test-admin-secret';

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

export interface Client {
  url: string;
  call(method: string, path: string, opts?: { token?: string; body?: unknown; headers?: Record<string, string> }): Promise<Answer>;
}

export function client(url: string): Client {
  return {
    url,
    async call(method, path, opts = {}) {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
      let body: string | undefined;
      if (opts.body !== undefined) {
        body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
        headers['content-type'] ??= 'application/json';
      }
      const res = await fetch(url + path, { method, headers, ...(body !== undefined ? { body } : {}) });
      const text = await res.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: res.status, headers: res.headers, text, json };
    },
  };
}

/**
 * A new directory of its own (with `files` written in it), removed when the test ends. Unlike
 * t.testdir, whose path is named after the test, two runs of the suite at once never share it.
 */
export function tempDir(t: Test, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'idnode-test-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function testConfig(t: Test, overrides: Record<string, unknown> = {}): Config {
  const dir = tempDir(t);
  // In-process nodes share the test's event loop: a test's own synchronous work must not shed their requests.
  return loadConfig({
    overrides: { db: join(dir, 'idnode.db'), listen: { port: 0 }, shedding: { maxInFlight: 1024, eventLoopDelayMs: 0 }, ...overrides },
    env: {},
  });
}

/** A clock tests move by hand (pass `now` to startNode): TTLs, stale windows, cool-downs, audit times. */
export interface TestClock {
  now: () => number;
  advance: (ms: number) => void;
}

export function testClock(startMs = Date.now()): TestClock {
  let ms = startMs;
  return {
    now: () => ms,
    advance(by) {
      ms += by;
    },
  };
}

/** Starts a node; closes it when the test ends. */
/**
 * The engine the HTTP suites run on. A `test/pg-*.test.ts` file sets TEST_STORE_ENGINE=postgres
 * and imports a suite, which then runs every `startNode` on a new database of one throwaway
 * PostgreSQL cluster per test file (SQLite otherwise).
 */
export const TEST_ENGINE: 'sqlite' | 'postgres' = process.env.TEST_STORE_ENGINE === 'postgres' ? 'postgres' : 'sqlite';

let cluster: Promise<PgCluster | undefined> | undefined;

/** The store settings of a node under test: a new PostgreSQL database when the suite runs on PostgreSQL. */
export async function engineOverrides(): Promise<Record<string, unknown>> {
  if (TEST_ENGINE === 'sqlite') return {};
  const c = await (cluster ??= pgCluster(tap));
  if (c === undefined) throw new Error('PostgreSQL is not available for a suite that runs on it');
  return { store: { engine: 'postgres', url: await c.createDatabase() } };
}

/** The environment that points a CLI command at the store of a node under test (either engine). */
export function storeEnv(config: Config): NodeJS.ProcessEnv {
  return config.store.engine === 'postgres' ? { IDNODE_STORE_ENGINE: 'postgres', IDNODE_STORE_URL: config.store.url } : { IDNODE_DB: config.db };
}

export async function startNode(
  t: Test,
  overrides: Record<string, unknown> = {},
  opts: Omit<NodeOptions, 'adminToken'> = {},
): Promise<Client & { node: IdNode; config: Config }> {
  const config = testConfig(t, { ...(await engineOverrides()), ...overrides });
  const node = await createNode(config, { ...opts, adminToken: ADMIN });
  const url = await node.listen();
  t.teardown(() => node.close());
  return { ...client(url), node, config };
}

/** Sends raw bytes (for paths fetch would normalise or refuse) and returns status and body. */
export function rawRequest(url: string, requestLine: Buffer | string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', reject);
    sock.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(text.slice(9, 12));
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    sock.write(Buffer.concat([Buffer.from(requestLine), Buffer.from(' HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n')]));
  });
}

export const sampleValues = [
  { index: 1, type: 'URL', data: { format: 'string', value: 'https://example.com/p/1' } },
  { index: 2, type: 'name', data: 'Brake caliper JH-C320' },
  { index: 3, type: 'batch', data: { format: 'string', value: 'B-0001' }, ttl: 3600 },
];

/** Creates prefix 88.100.7 and a registrar token for it; returns the registrar's secret. */
export async function registrar(c: Client, prefix = '88.100.7'): Promise<string> {
  const p = await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix, owner: { name: `Enterprise ${prefix}` } } });
  if (p.status !== 201 && p.status !== 409) throw new Error(`prefix create failed: ${p.text}`);
  const tok = await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'registrar', prefixes: [prefix] } });
  if (tok.status !== 201) throw new Error(`token create failed: ${tok.text}`);
  return tok.json.secret as string;
}

/** Runs an idnode command in this process, as the shell would; `env` replaces the environment. */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { stdout: (s) => (out += s), stderr: (s) => (err += s), env, isTTY: false });
  return { code, out, err };
}

/** The environment without IDNODE_* variables, for child processes. */
export const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('IDNODE_')));

/** Collects a child's stdout and stderr; `waitFor` resolves when the output matches (an event, not a delay). */
export function watch(child: ChildProcess): { output: () => string; waitFor: (re: RegExp) => Promise<RegExpExecArray> } {
  let out = '';
  const waiters: Array<{ re: RegExp; resolve(m: RegExpExecArray): void; reject(e: Error): void }> = [];
  let exited: string | undefined;
  const check = () => {
    for (const w of [...waiters]) {
      const m = w.re.exec(out);
      if (m !== null) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      } else if (exited !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.reject(new Error(`the process ${exited} before printing ${w.re}: ${out}`));
      }
    }
  };
  const take = (d: Buffer | string) => {
    out += String(d);
    check();
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', take);
  child.once('close', (code, signal) => {
    exited = `exited (${signal ?? code})`;
    check();
  });
  return {
    output: () => out,
    waitFor: (re) =>
      new Promise((resolve, reject) => {
        waiters.push({ re, resolve, reject });
        check();
      }),
  };
}

/** What seeds/ holds, counted from the files (tests compare with these, never with typed-in numbers). */
export function seedCounts(): { prefixes: number; records: number; events: number; recordsUnder(prefix: string): number } {
  const lines = (file: string) =>
    readFileSync(join(SEEDS_DIR, file), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '');
  const handles = lines('records.ndjson').map((l) => (JSON.parse(l) as { handle: string }).handle);
  return {
    prefixes: (JSON.parse(readFileSync(join(SEEDS_DIR, 'prefixes.json'), 'utf8')) as unknown[]).length,
    records: handles.length,
    events: lines('events.ndjson').length,
    recordsUnder: (prefix) => handles.filter((h) => h.startsWith(`${prefix}/`)).length,
  };
}

/**
 * A base port N for `idnode demo` with N, N+1, N+2 and N+9 free. Drawn below the kernel's
 * ephemeral range (32768 and up here), where port-0 listeners and outgoing connections of
 * other tests running at the same time take theirs, so only another demo can collide.
 */
export async function freeDemoBase(): Promise<number> {
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
  for (;;) {
    const base = 20000 + Math.floor(Math.random() * 12700);
    if ((await Promise.all([0, 1, 2, 9].map((d) => free(base + d)))).every(Boolean)) return base;
  }
}

const SERVE_BIN = fileURLToPath(new URL('../src/cli/bin.ts', import.meta.url));

/**
 * Asks `probe` again until it answers something other than undefined: for what another process
 * must do (a timer's report, a cache entry's expiry on its own clock), where no event reaches
 * this one. Bounded generously for a busy machine; no assertion is about how long it took.
 */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, tries = 600): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not seen after ${tries} tries`);
}

export interface Proc extends Client {
  admin: string;
  child: ChildProcess;
  start(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** An `idnode serve --config` child process; `start()` (again after `kill()`) runs it on the same database and port. */
export async function node(t: Test, dir: string, name: string, config: Record<string, unknown>, admin = `${name}-admin-secret`): Promise<Proc> {
  const port = await freePort();
  const file = join(dir, `${name}.json`);
  // No shedding on event-loop delay: a node just started on a busy machine lags, and this test is not about shedding.
  const shedding = { maxInFlight: 1024, eventLoopDelayMs: 0 };
  writeFileSync(file, JSON.stringify({ db: join(dir, `${name}.db`), listen: { port }, logLevel: 'warn', shedding, ...config }));
  const proc = {
    ...client(`http://127.0.0.1:${port}`),
    admin,
    child: undefined as unknown as ChildProcess,
    async start() {
      const child = spawn(process.execPath, [...process.execArgv, SERVE_BIN, 'serve', '--config', file], {
        env: { ...cleanEnv, IDNODE_ADMIN_TOKEN: admin },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      proc.child = child;
      // Started when it says so; a process that exits first rejects with its output.
      await watch(child).waitFor(/listening on/);
    },
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
      const exited = new Promise((r) => proc.child.once('exit', r));
      proc.child.kill(signal);
      await exited;
    },
  };
  t.teardown(() => proc.kill());
  return proc;
}

export async function ok(p: Promise<{ status: number; text: string; json: any }>, status = 200): Promise<any> {
  const r = await p;
  if (r.status !== status) throw new Error(`expected ${status}, got ${r.status}: ${r.text}`);
  return r.json;
}

/** A records row under prefix 88.1 for store-level tests (the spelling is the key in upper case). */
export const testRecordRow = (key: string, values: string) => ({
  handleKey: key,
  handle: key.toUpperCase(),
  prefixKey: '88.1',
  valuesJson: values,
  publicJson: null,
  maxAge: 0,
  expiresAt: null,
  etag: '"e"',
});

/** Listens on a free port of 127.0.0.1 until the test ends (its open connections closed too); returns its URL. */
export async function listenLocal(t: Test, server: HttpServer): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A second registry on a node's database, with its own connection: what the CLI or another worker is. */
export async function secondRegistry(t: Test, config: Registry['config']): Promise<Registry> {
  const reg = await openRegistry(config);
  t.teardown(async () => {
    reg.changes.stop();
    await reg.store.close();
  });
  return reg;
}
