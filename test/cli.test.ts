import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { client } from './helpers.js';

const CLI = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const BUILT = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
// Run the TypeScript source with the same loaders tap gave this process (coverage included).
const nodeArgs = [...process.execArgv, CLI];
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('IDNODE_')));

function run(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const r = spawnSync(process.execPath, [...nodeArgs, ...args], { cwd: opts.cwd, env: { ...cleanEnv, ...opts.env }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Starts `idnode serve` and resolves once it prints its URL. */
function serve(t: Test, args: string[], opts: { cwd: string; env?: Record<string, string>; bin?: string[] }) {
  const child = spawn(process.execPath, [...(opts.bin ?? nodeArgs), 'serve', ...args], { cwd: opts.cwd, env: { ...cleanEnv, ...opts.env } });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => child.kill('SIGKILL'));
  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${out} ${err}`)), 60_000);
    const check = () => {
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        setTimeout(() => resolve(m[1]!), 50);
      }
    };
    child.stdout.on('data', check);
    child.on('exit', () => reject(new Error(`serve exited: ${out} ${err}`)));
  });
  return { child, ready, exited, output: () => out, errors: () => err };
}

t.test('help and usage errors', async (t) => {
  const help = run(['--help']);
  t.equal(help.code, 0);
  t.match(help.out, /idnode serve \[--config FILE\]/);
  t.match(help.out, /IDNODE_CACHE_MAX_BYTES/);
  t.equal(run([]).code, 2);
  const unknown = run(['frobnicate'], { cwd: t.testdir({}) });
  t.equal(unknown.code, 2);
  t.match(unknown.err, /unknown command "frobnicate"/);
  const badFlag = run(['--nope']);
  t.equal(badFlag.code, 2);
  t.match(badFlag.err, /idnode: .*--nope/);
});

t.test('init, token, prefix commands work on the database directly', async (t) => {
  const dir = t.testdir({ 'c.json': JSON.stringify({ db: 'x.db' }) });
  const cfg = ['--config', join(dir, 'c.json')];
  const init = run(['init', ...cfg], { cwd: dir });
  t.equal(init.code, 0, init.err);
  t.match(init.out, /admin token tok_[0-9a-f]+ created; secret \(shown once\): idn_/);
  const prefix = run(['prefix', 'add', '88.100.7', '--owner', 'Acme', ...cfg], { cwd: dir });
  t.equal(prefix.code, 0, prefix.err);
  t.match(JSON.parse(prefix.out), { prefix: '88.100.7', owner: { name: 'Acme' }, status: 'active' });
  t.match(run(['prefix', 'add', '88.100.9', '--owner', 'E', '--site', 'http://127.0.0.1:9', ...cfg], { cwd: dir }).out, /"site":"http:\/\/127.0.0.1:9"/);
  t.equal(
    run(['prefix', 'list', ...cfg], { cwd: dir })
      .out.trim()
      .split('\n').length,
    2,
  );
  const created = run(['token', 'create', '--role', 'registrar', '--prefix', '88.100.7', '--label', 'line 1', ...cfg], { cwd: dir });
  t.equal(created.code, 0, created.err);
  const tok = JSON.parse(created.out);
  t.match(tok, { role: 'registrar', prefixes: ['88.100.7'], secret: /^idn_/ });
  const list = run(['token', 'list', ...cfg], { cwd: dir });
  t.equal(list.out.trim().split('\n').length, 2);
  t.notOk(list.out.includes(tok.secret));
  const revoke = run(['token', 'revoke', tok.id, ...cfg], { cwd: dir });
  t.match(JSON.parse(revoke.out), { id: tok.id, revokedAt: /Z$/ });
  const bad = run(['token', 'create', '--role', 'root', ...cfg], { cwd: dir });
  t.equal(bad.code, 2);
  t.match(bad.err, /role must be one of/);
  t.equal(run(['token', 'revoke', ...cfg], { cwd: dir }).code, 2);
  t.equal(run(['prefix', 'add', '88.100.8', ...cfg], { cwd: dir }).code, 2);
  t.match(run(['token', 'revoke', 'tok_none', ...cfg], { cwd: dir }).err, /no token with id tok_none/);
});

t.test('bad config stops the start, naming the key', async (t) => {
  const dir = t.testdir({ 'c.json': JSON.stringify({ cache: { maxByte: 5 } }) });
  const r = run(['serve', '--config', join(dir, 'c.json')], { cwd: dir });
  t.equal(r.code, 2);
  t.match(r.err, /unknown config key "cache.maxByte"/);
  const env = run(['serve', '--config', join(dir, 'c.json')], { cwd: dir, env: { IDNODE_LISTEN_PORT: 'x' } });
  t.match(env.err, /IDNODE_LISTEN_PORT|cache.maxByte/);
});

t.test('serve --config: no seed, IDNODE_ADMIN_TOKEN bootstrap, SIGTERM shuts down cleanly', async (t) => {
  const dir = t.testdir({ 'c.json': JSON.stringify({ db: 'n.db', listen: { port: 0 }, homed: ['88.200'] }) });
  const s = serve(t, ['--config', join(dir, 'c.json')], { cwd: dir, env: { IDNODE_ADMIN_TOKEN: 'boot-secret' } });
  const url = await s.ready;
  const c = client(url);
  t.equal((await c.call('GET', '/api/handles?prefix=88.200', { token: 'boot-secret' })).json.totalCount, 0, 'not seeded, token works');
  t.equal((await c.call('PUT', '/api/handles/88.200/x', { token: 'boot-secret', body: [{ index: 1, type: 'a', data: 'b' }] })).status, 200);
  s.child.kill('SIGTERM');
  t.equal(await s.exited, 0);
  t.match(s.output(), /SIGTERM: shutting down/);
  t.notMatch(s.output(), /admin token \(shown once/);
});

t.test('embedded default: seeded on first start, prints token and curl lines; restart keeps data', async (t) => {
  const dir = t.testdir({});
  const first = serve(t, [], { cwd: dir, env: { IDNODE_LISTEN_PORT: '0' } });
  const url = await first.ready;
  const out = first.output();
  const secret = /admin token \(shown once, keep it\): (idn_\S+)/.exec(out)?.[1];
  t.ok(secret, 'prints the admin token');
  const curls = [...out.matchAll(/^\s+curl .*$/gm)].map((m) => m[0]);
  t.equal(curls.length, 3, 'three example curl lines');
  const sample = /curl (http:\/\/\S+)/.exec(curls[0]!)![1]!;
  const res = await fetch(sample);
  const body = (await res.json()) as any;
  t.equal(res.status, 200);
  t.equal(body.responseCode, 1);
  t.match(body.handle, /^88\.100\.1\/ENGINE-2026-\d{6}$/);
  t.ok(body.values.some((v: any) => v.type === 'batch'));
  const listed = await client(url).call('GET', '/api/handles?prefix=88.100.2&pageSize=0', { token: secret! });
  t.equal(listed.json.totalCount, 1220, 'a thousand calipers, their 20 batches, 200 brake assemblies');
  const lineageCurl = /curl -H "Authorization: Bearer (\S+)" '(http:\/\/\S+\/api\/lineage\/\S+)'/.exec(curls[2]!);
  t.ok(lineageCurl, 'the third line shows a lineage query');
  const bom = (await (await fetch(lineageCurl![2]!, { headers: { authorization: `Bearer ${lineageCurl![1]}` } })).json()) as any;
  t.equal(Math.max(...bom.nodes.map((n: any) => n.depth)), 4, 'vehicle → assemblies → parts → batches → raw-material lots');
  t.ok(
    bom.nodes.some((n: any) => n.location === 'foreign' && n.handle.startsWith('88.200.15/')),
    'raw-material lots are foreign',
  );
  t.equal(bom.truncated, false);
  t.ok(existsSync(join(dir, 'data', 'idnode.db')));
  first.child.kill('SIGTERM');
  await first.exited;
  const second = serve(t, [], { cwd: dir, env: { IDNODE_LISTEN_PORT: '0' } });
  const url2 = await second.ready;
  t.notMatch(second.output(), /admin token \(shown once/, 'no second token');
  t.equal((await client(url2).call('GET', '/api/handles?prefix=88.100.2&pageSize=0', { token: secret! })).json.totalCount, 1220, 'not seeded twice');
  second.child.kill('SIGTERM');
  await second.exited;
});

t.test('the built command (what npm start and npx idnode run)', { skip: !existsSync(BUILT) && 'dist/ not built' }, async (t) => {
  const r = spawnSync(process.execPath, [BUILT, '--help'], { encoding: 'utf8' });
  t.equal(r.status, 0);
  t.match(r.stdout, /idnode serve/);
});

t.test('idnode demo: a three-tier hierarchy of processes, stopped by SIGTERM', async (t) => {
  const dir = t.testdir({});
  const base = 20000 + Math.floor(Math.random() * 40000);
  const child = spawn(process.execPath, [...nodeArgs, 'demo', '--base-port', String(base), '--dir', join(dir, 'demo')], { cwd: dir, env: cleanEnv });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => child.kill('SIGKILL'));
  for (let i = 0; i < 600 && !out.includes('what A, B and E reported up'); i++) await new Promise((r) => setTimeout(r, 100));
  t.match(out, /T {2}top-level node, homes 88/);
  const viaTop = await fetch(`http://127.0.0.1:${base}/api/handles/88.100.9/GEARBOX-2026-0001`);
  t.equal(viaTop.status, 200, 'T → A → E');
  const viaB = (await (await fetch(`http://127.0.0.1:${base + 2}/api/handles/88.100.1/ENGINE-2026-000001`)).json()) as any;
  t.equal(viaB.handle, '88.100.1/ENGINE-2026-000001', 'B → T → A (seeded)');
  child.kill('SIGTERM');
  t.equal(await exited, 0);
  await t.rejects(fetch(`http://127.0.0.1:${base}/healthz`), 'the nodes stop with it');
  t.equal(run(['demo', '--base-port', 'x']).code, 2);
});

t.test('SIGTERM lets a bulk upload in flight finish, then closes SQLite and exits 0', async (t) => {
  const dir = t.testdir({ 'c.json': JSON.stringify({ db: 'n.db', listen: { port: 0 }, bulk: { chunkSize: 2 } }) });
  const s = serve(t, ['--config', join(dir, 'c.json')], { cwd: dir, env: { IDNODE_ADMIN_TOKEN: 'boot-secret' } });
  const url = await s.ready;
  await client(url).call('POST', '/api/prefixes', { token: 'boot-secret', body: { prefix: '88.100.7', owner: { name: 'A' } } });
  const { hostname, port } = new URL(url);
  const sock = connect(Number(port), hostname);
  await new Promise((r) => sock.once('connect', r));
  let answer = '';
  sock.on('data', (d) => (answer += d));
  const ended = new Promise((r) => sock.once('close', r));
  sock.write(
    'POST /api/prefixes/88.100.7/handles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer boot-secret\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n',
  );
  const send = (text: string) => sock.write(`${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`);
  const line = (i: number) => `${JSON.stringify({ handle: `88.100.7/S-${i}`, values: [{ index: 1, type: 'URL', data: `https://x/${i}` }] })}\n`;
  send(line(1) + line(2) + line(3));
  for (let i = 0; i < 100 && !answer.includes('"line":2'); i++) await new Promise((r) => setTimeout(r, 20));
  s.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  send(line(4) + line(5));
  sock.write('0\r\n\r\n');
  for (let i = 0; i < 100 && !answer.includes('"summary"'); i++) await new Promise((r) => setTimeout(r, 20));
  t.match(answer, /\{"summary":true,"total":5,"ok":5,"failed":0,"committedThroughLine":5\}/, 'the upload in flight finished');
  sock.end();
  await ended;
  t.equal(await s.exited, 0);
  t.match(s.output(), /SIGTERM: stopped cleanly/);
  const again = serve(t, ['--config', join(dir, 'c.json')], { cwd: dir });
  const url2 = await again.ready;
  t.equal((await client(url2).call('GET', '/api/handles/88.100.7/S-5')).status, 200, 'every record is there after a restart');
  again.child.kill('SIGTERM');
  await again.exited;
});
