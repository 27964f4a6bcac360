/**
 * `idnode demo`: a whole hierarchy on this machine, as separate processes on their own
 * SQLite files. T (top-level, homes 88) delegates 88.100 to A and 88.200 to B; A (the
 * seeded secondary node) delegates 88.100.9 to the enterprise node E.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPgCluster } from './pgcluster.js';

const ADMIN = 'demo-admin-token';

interface DemoNode {
  name: string;
  url: string;
  child: ChildProcess;
}

/** The fields of an answer the demo reads (the secret of a token it creates). */
interface DemoAnswer {
  secret?: string;
}

async function call(url: string, method: string, path: string, body?: unknown): Promise<DemoAnswer> {
  const res = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${url}${path}: ${res.status} ${text}`);
  return JSON.parse(text) as DemoAnswer;
}

/** The secret of a token the demo just created (an answer without one is a bug worth stopping for). */
async function newSecret(answer: Promise<DemoAnswer>): Promise<string> {
  const { secret } = await answer;
  if (secret === undefined) throw new Error('POST /api/tokens answered without a secret');
  return secret;
}

/** Starts idnode nodes as child processes of this one, each from a config file in `dir`. */
function nodeStarter(dir: string) {
  // The same CLI this runs from: dist/ when installed, the TypeScript source under the tests.
  const cli = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './bin.ts' : './bin.js', import.meta.url));
  const nodes: DemoNode[] = [];
  async function start(name: string, port: number, config: Record<string, unknown>): Promise<DemoNode> {
    const file = join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify({ db: join(dir, `${name}.db`), listen: { port }, logLevel: 'warn', ...config }, null, 2));
    const child = spawn(process.execPath, [...process.execArgv, cli, 'serve', '--config', file], {
      env: { ...process.env, IDNODE_ADMIN_TOKEN: ADMIN },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const node = { name, url: `http://127.0.0.1:${port}`, child };
    nodes.push(node);
    await new Promise<void>((ok, fail) => {
      let seen = '';
      child.stdout.on('data', (d) => {
        seen += d;
        if (seen.includes('listening on')) ok();
      });
      child.on('exit', (code) => fail(new Error(`node ${name} exited with ${code} before listening: ${seen}`)));
    });
    return node;
  }

  const stopAll = async () => {
    await Promise.all(
      nodes.map(
        (n) =>
          new Promise<void>((done) => {
            if (n.child.exitCode !== null) return done();
            n.child.once('exit', () => done());
            n.child.kill('SIGTERM');
          }),
      ),
    );
  };

  /** Resolves when a signal arrives or any node exits. */
  const untilStopped = () =>
    new Promise<void>((done) => {
      process.once('SIGINT', done);
      process.once('SIGTERM', done);
      for (const n of nodes) n.child.once('exit', done);
    });
  return { start, stopAll, untilStopped };
}

/** Runs the demo until SIGINT/SIGTERM; `out` prints a line. Resolves when the nodes have stopped. */
export async function runDemo(opts: { basePort: number; dir: string; out: (line: string) => void; stopAfterSetup?: boolean }): Promise<number> {
  const dir = resolve(opts.dir);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const { start, stopAll, untilStopped } = nodeStarter(dir);

  try {
    const p = opts.basePort;
    const T = await start('T', p, { homed: ['88'] });
    const url = (port: number) => `http://127.0.0.1:${port}`;
    const tokenA = await newSecret(call(T.url, 'POST', '/api/tokens', { role: 'node', prefixes: ['88.100'], label: 'secondary node A' }));
    const tokenB = await newSecret(call(T.url, 'POST', '/api/tokens', { role: 'node', prefixes: ['88.200'], label: 'secondary node B' }));
    await call(T.url, 'POST', '/api/prefixes', { prefix: '88.100', owner: { name: 'Secondary node A (auto parts)' }, site: url(p + 1) });
    await call(T.url, 'POST', '/api/prefixes', { prefix: '88.200', owner: { name: 'Secondary node B (pumps)' }, site: url(p + 2) });
    const [A, B] = await Promise.all([
      start('A', p + 1, { homed: ['88.100'], seed: true, upstream: { url: T.url, token: tokenA } }),
      start('B', p + 2, { homed: ['88.200'], upstream: { url: T.url, token: tokenB } }),
    ]);
    const tokenE = await newSecret(call(A.url, 'POST', '/api/tokens', { role: 'node', prefixes: ['88.100.9'], label: 'enterprise node E' }));
    await call(A.url, 'POST', '/api/prefixes', { prefix: '88.100.9', owner: { name: 'Enterprise node E (gearboxes)' }, site: url(p + 9) });
    const E = await start('E', p + 9, { homed: ['88.100.9'], upstream: { url: A.url, token: tokenE } });
    await call(B.url, 'PUT', '/api/handles/88.200/PUMP-2026-0001', [
      { index: 1, type: 'URL', data: 'https://b.example/p/PUMP-2026-0001' },
      { index: 2, type: 'name', data: 'Water pump WP-220' },
    ]);
    await call(E.url, 'PUT', '/api/handles/88.100.9/GEARBOX-2026-0001', [
      { index: 1, type: 'URL', data: 'https://e.example/g/GEARBOX-2026-0001' },
      { index: 2, type: 'name', data: 'Gearbox 6AT' },
    ]);
    opts.out(`idnode demo: a three-tier hierarchy in ${dir} (admin token on every node: ${ADMIN})`);
    opts.out(`  T  top-level node, homes 88            ${T.url}`);
    opts.out(`  A  secondary node 88.100 (seeded)     ${A.url}   upstream T`);
    opts.out(`  B  secondary node 88.200               ${B.url}   upstream T`);
    opts.out(`  E  enterprise node 88.100.9            ${E.url}   delegated from A`);
    opts.out('try:');
    opts.out(`  curl ${T.url}/api/handles/88.100.9/GEARBOX-2026-0001     # T → A → E`);
    opts.out(`  curl -i ${A.url}/api/handles/88.200/PUMP-2026-0001      # A → T → B; again: Cache-Status: idnode; hit`);
    opts.out(`  curl ${B.url}/api/handles/88.100.1/ENGINE-2026-000001   # B → T → A`);
    opts.out(`  curl -H "Authorization: Bearer ${ADMIN}" ${T.url}/api/sync/reports   # what A, B and E reported up`);
    if (opts.stopAfterSetup) return 0;
    await untilStopped();
    return 0;
  } finally {
    await stopAll();
  }
}

/**
 * `idnode demo --postgres`: two nodes over one PostgreSQL cluster on this machine — a primary
 * and a synchronous streaming standby. Node 1 reads and writes on the primary; node 2 writes
 * on the primary and reads from the standby. A write on one is in the other's answers once the
 * change feed reaches it. The cluster lives in a temporary directory and is removed on exit.
 */
export async function runPgDemo(opts: { basePort: number; dir: string; out: (line: string) => void; stopAfterSetup?: boolean }): Promise<number> {
  const dir = resolve(opts.dir);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  opts.out('idnode demo --postgres: starting a PostgreSQL primary and a synchronous standby …');
  const cluster = await createPgCluster();
  const { start, stopAll, untilStopped } = nodeStarter(dir);
  try {
    await cluster.primary.sql('CREATE DATABASE idnode');
    const standby = await cluster.standby({ sync: true });
    const p = opts.basePort;
    const primaryUrl = cluster.primary.url('idnode');
    const store = (readUrl: string) => ({ engine: 'postgres', url: primaryUrl, ...(readUrl ? { readUrl } : {}) });
    // Node 1 migrates and seeds first, so the two never race to create the schema's demo data.
    const one = await start('node1', p, { homed: ['88.100'], seed: true, store: store('') });
    const two = await start('node2', p + 1, { homed: ['88.100'], store: store(standby.url('idnode')) });
    opts.out(`idnode demo --postgres: two nodes over one PostgreSQL database (admin token: ${ADMIN}); data in ${cluster.root}`);
    opts.out(`  primary  ${primaryUrl}`);
    opts.out(`  standby  ${standby.url('idnode')}   synchronous, streaming`);
    opts.out(`  node 1   ${one.url}   reads and writes on the primary`);
    opts.out(`  node 2   ${two.url}   writes on the primary, reads from the standby`);
    opts.out('try:');
    opts.out(`  curl -X PUT -H "Authorization: Bearer ${ADMIN}" -H "Content-Type: application/json" \\`);
    opts.out(`       -d '[{"index":1,"type":"URL","data":"https://example.com/p/1"}]' ${one.url}/api/handles/88.100.1/DEMO-1`);
    opts.out(`  curl ${two.url}/api/handles/88.100.1/DEMO-1     # written on node 1, answered by node 2`);
    opts.out(`  curl ${two.url}/api/audit/verify -H "Authorization: Bearer ${ADMIN}"   # one chain for both nodes`);
    if (opts.stopAfterSetup) return 0;
    await untilStopped();
    return 0;
  } finally {
    await stopAll();
    await cluster.destroy();
  }
}
