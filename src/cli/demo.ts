/**
 * `idnode demo`: a whole hierarchy on this machine, as separate processes on their own
 * SQLite files. T (top-level, homes 88) delegates 88.100 to A and 88.200 to B; A (the
 * seeded secondary node) delegates 88.100.9 to the enterprise node E.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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

/** Runs the demo until SIGINT/SIGTERM; `out` prints a line. Resolves when the nodes have stopped. */
export async function runDemo(opts: { basePort: number; dir: string; out: (line: string) => void; stopAfterSetup?: boolean }): Promise<number> {
  const dir = resolve(opts.dir);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
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
    await new Promise<void>((done) => {
      process.once('SIGINT', done);
      process.once('SIGTERM', done);
      for (const n of nodes) n.child.once('exit', done);
    });
    return 0;
  } finally {
    await stopAll();
  }
}
