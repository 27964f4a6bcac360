import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanEnv, client, freeDemoBase, runCli, seedCounts, watch, tempDir } from './helpers.js';

const BIN = fileURLToPath(new URL('../src/cli/bin.ts', import.meta.url));
const BUILT = fileURLToPath(new URL('../dist/src/cli/bin.js', import.meta.url));
// Processes run the TypeScript source with the same loaders tap gave this process (coverage included).
const nodeArgs = [...process.execArgv, BIN];
// A node just started on a busy machine (compiling, collecting) lags its event loop: these tests
// are not about shedding, so it is off, as in-process test nodes have it (test/helpers.ts).
const NO_SHEDDING = { IDNODE_SHEDDING_EVENT_LOOP_DELAY_MS: '0' };

/** Starts `idnode serve` as a process; `ready` resolves with its URL once it prints it. */
function serve(t: Test, args: string[], opts: { cwd: string; env?: Record<string, string> }) {
  const child = spawn(process.execPath, [...nodeArgs, 'serve', ...args], { cwd: opts.cwd, env: { ...cleanEnv, ...NO_SHEDDING, ...opts.env } });
  const w = watch(child);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => child.kill('SIGKILL'));
  const ready = w.waitFor(/listening on (http:\/\/\S+)/).then((m) => m[1]!);
  return { child, ready, exited, output: w.output, waitFor: w.waitFor };
}

/** Collects what a socket receives; `waitFor` resolves once it holds the text (rejects if it closes first). */
function received(sock: Socket) {
  let text = '';
  const waiters: Array<{ s: string; resolve: () => void; reject: (e: Error) => void }> = [];
  sock.on('data', (d) => {
    text += String(d);
    for (const w of [...waiters]) {
      if (!text.includes(w.s)) continue;
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  sock.once('close', () => {
    for (const w of waiters.splice(0)) w.reject(new Error(`the connection closed before "${w.s}" arrived: ${text}`));
  });
  return {
    text: () => text,
    waitFor: (s: string) => new Promise<void>((resolve, reject) => (text.includes(s) ? resolve() : waiters.push({ s, resolve, reject }))),
  };
}

/** A base port whose demo ports (N, N+1, N+2, N+9) are free right now. */

t.test('help and usage errors', async (t) => {
  const help = await runCli(['--help']);
  t.equal(help.code, 0);
  t.match(help.out, /idnode serve \[--config FILE\]/);
  t.match(help.out, /IDNODE_CACHE_MAX_BYTES/);
  t.equal((await runCli([])).code, 2);
  const unknown = await runCli(['frobnicate']);
  t.equal(unknown.code, 2);
  t.match(unknown.err, /unknown command "frobnicate"/);
  const badFlag = await runCli(['--nope']);
  t.equal(badFlag.code, 2);
  t.match(badFlag.err, /idnode: .*--nope/);
});

t.test('importing the CLI runs nothing; main() answers with an exit code', async (t) => {
  const before = process.exitCode;
  const mod = await import('../src/cli/main.js');
  t.equal(process.exitCode, before, 'no command ran on import');
  t.type(mod.main, 'function');
  t.equal(mod.SERVING, -1);
  const defaultDb = join(process.cwd(), 'data', 'idnode.db');
  const existed = existsSync(defaultDb);
  const unknown = await runCli(['init', 'twice']);
  t.equal(unknown.code, 2);
  t.match(unknown.err, /unknown command "init twice"/);
  t.equal(existsSync(defaultDb), existed, 'an unknown command opens no database');
});

t.test('init, token, prefix commands work on the database directly', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ db: join(dir, 'x.db') }));
  const cfg = ['--config', join(dir, 'c.json')];
  const run = (args: string[]) => runCli([...args, ...cfg]);
  const init = await run(['init']);
  t.equal(init.code, 0, init.err);
  t.match(init.out, /admin token tok_[0-9a-f]+ created; secret \(shown once\): idn_/);
  const prefix = await run(['prefix', 'add', '88.100.7', '--owner', 'Acme']);
  t.equal(prefix.code, 0, prefix.err);
  t.match(JSON.parse(prefix.out), { prefix: '88.100.7', owner: { name: 'Acme' }, status: 'active' });
  t.match((await run(['prefix', 'add', '88.100.9', '--owner', 'E', '--site', 'http://127.0.0.1:9'])).out, /"site":"http:\/\/127.0.0.1:9"/);
  t.equal((await run(['prefix', 'list'])).out.trim().split('\n').length, 2);
  const created = await run(['token', 'create', '--role', 'registrar', '--prefix', '88.100.7', '--label', 'line 1']);
  t.equal(created.code, 0, created.err);
  const tok = JSON.parse(created.out);
  t.match(tok, { role: 'registrar', prefixes: ['88.100.7'], secret: /^idn_/ });
  const list = await run(['token', 'list']);
  t.equal(list.out.trim().split('\n').length, 2);
  t.notOk(list.out.includes(tok.secret));
  const revoke = await run(['token', 'revoke', tok.id]);
  t.match(JSON.parse(revoke.out), { id: tok.id, revokedAt: /Z$/ });
  const bad = await run(['token', 'create', '--role', 'root']);
  t.equal(bad.code, 2);
  t.match(bad.err, /role must be one of/);
  t.equal((await run(['token', 'revoke'])).code, 2);
  t.equal((await run(['prefix', 'add', '88.100.8'])).code, 2);
  t.match((await run(['token', 'revoke', 'tok_none'])).err, /no token with id tok_none/);
});

t.test('bad config stops the start, naming the key', async (t) => {
  const dir = tempDir(t, { 'c.json': JSON.stringify({ cache: { maxByte: 5 } }) });
  const r = await runCli(['serve', '--config', join(dir, 'c.json')]);
  t.equal(r.code, 2);
  t.match(r.err, /unknown config key "cache.maxByte"/);
  const env = await runCli(['serve', '--config', join(dir, 'c.json')], { IDNODE_LISTEN_PORT: 'x' });
  t.match(env.err, /IDNODE_LISTEN_PORT|cache.maxByte/);
  const badEnv = await runCli(['serve'], { IDNODE_LISTEN_PORT: 'x' });
  t.equal(badEnv.code, 2);
  t.match(badEnv.err, /IDNODE_LISTEN_PORT/, 'the environment main() was given is the one read');
});

t.test('serve --config: no seed, IDNODE_ADMIN_TOKEN bootstrap, SIGTERM shuts down cleanly', async (t) => {
  const dir = tempDir(t, { 'c.json': JSON.stringify({ db: 'n.db', listen: { port: 0 }, homed: ['88.200'] }) });
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
  const dir = tempDir(t);
  const calipers = seedCounts().recordsUnder('88.100.2');
  t.ok(calipers > 0, 'the seeds hold 88.100.2 records');
  const first = serve(t, [], { cwd: dir, env: { IDNODE_LISTEN_PORT: '0' } });
  const url = await first.ready;
  // The page URL follows the three curl lines: the last line of the start-up text.
  await first.waitFor(/(^\s+curl .*\n){3}\s+open .*\n/m);
  const out = first.output();
  const secret = /admin token \(shown once, keep it\): (idn_\S+)/.exec(out)?.[1];
  t.ok(secret, 'prints the admin token');
  const curls = [...out.matchAll(/^\s+curl .*$/gm)].map((m) => m[0]);
  t.equal(curls.length, 3, 'three example curl lines');
  const page = /^\s+open (http:\/\/\S+) in a browser/m.exec(out)?.[1];
  t.ok(page, 'a page URL to open in a browser');
  const html = await fetch(page!, { headers: { accept: 'text/html' } });
  t.equal(html.status, 200);
  t.match(html.headers.get('content-type'), /^text\/html/, 'the page, for a browser');
  const sample = /curl (http:\/\/\S+)/.exec(curls[0]!)![1]!;
  const res = await fetch(sample);
  const body = (await res.json()) as any;
  t.equal(res.status, 200);
  t.equal(body.responseCode, 1);
  t.match(body.handle, /^88\.100\.1\/ENGINE-2026-\d{6}$/);
  t.ok(body.values.some((v: any) => v.type === 'batch'));
  const listed = await client(url).call('GET', '/api/handles?prefix=88.100.2&pageSize=0', { token: secret! });
  t.equal(listed.json.totalCount, calipers, 'every seeded 88.100.2 record: calipers, their batches, brake assemblies');
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
  await second.waitFor(/(^\s+curl .*\n){3}/m);
  t.notMatch(second.output(), /admin token \(shown once/, 'no second token');
  t.equal((await client(url2).call('GET', '/api/handles?prefix=88.100.2&pageSize=0', { token: secret! })).json.totalCount, calipers, 'not seeded twice');
  second.child.kill('SIGTERM');
  await second.exited;
});

t.test('the built command (what npm start and npx idnode run)', { skip: !existsSync(BUILT) && 'dist/ not built' }, async (t) => {
  const r = spawnSync(process.execPath, [BUILT, '--help'], { encoding: 'utf8', env: cleanEnv });
  t.equal(r.status, 0);
  t.match(r.stdout, /idnode serve/);
  const unknown = spawnSync(process.execPath, [BUILT, 'frobnicate'], { encoding: 'utf8', env: cleanEnv });
  t.equal(unknown.status, 2, 'the exit code main() answers becomes the process exit code');
  t.match(unknown.stderr, /unknown command "frobnicate"/);
});

t.test('idnode demo: a three-tier hierarchy of processes, stopped by SIGTERM', async (t) => {
  const dir = tempDir(t);
  const base = await freeDemoBase();
  const child = spawn(process.execPath, [...nodeArgs, 'demo', '--base-port', String(base), '--dir', join(dir, 'demo')], {
    cwd: dir,
    env: { ...cleanEnv, ...NO_SHEDDING },
  });
  const w = watch(child);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => child.kill('SIGKILL'));
  await w.waitFor(/what A, B and E reported up/);
  t.match(w.output(), /T {2}top-level node, homes 88/);
  const viaTop = await fetch(`http://127.0.0.1:${base}/api/handles/88.100.9/GEARBOX-2026-0001`);
  t.equal(viaTop.status, 200, 'T → A → E');
  const viaB = (await (await fetch(`http://127.0.0.1:${base + 2}/api/handles/88.100.1/ENGINE-2026-000001`)).json()) as any;
  t.equal(viaB.handle, '88.100.1/ENGINE-2026-000001', 'B → T → A (seeded)');
  child.kill('SIGTERM');
  t.equal(await exited, 0);
  await t.rejects(fetch(`http://127.0.0.1:${base}/healthz`), 'the nodes stop with it');
  const badPort = await runCli(['demo', '--base-port', 'x']);
  t.equal(badPort.code, 2);
  t.match(badPort.err, /--base-port must be a port number/);
});

t.test('SIGTERM lets a bulk upload in flight finish, then closes SQLite and exits 0', async (t) => {
  const dir = tempDir(t, { 'c.json': JSON.stringify({ db: 'n.db', listen: { port: 0 }, bulk: { chunkSize: 2 } }) });
  const s = serve(t, ['--config', join(dir, 'c.json')], { cwd: dir, env: { IDNODE_ADMIN_TOKEN: 'boot-secret' } });
  const url = await s.ready;
  t.equal((await client(url).call('POST', '/api/prefixes', { token: 'boot-secret', body: { prefix: '88.100.7', owner: { name: 'A' } } })).status, 201);
  const { hostname, port } = new URL(url);
  const sock = connect(Number(port), hostname);
  await new Promise((r) => sock.once('connect', r));
  const answer = received(sock);
  const ended = new Promise((r) => sock.once('close', r));
  sock.write(
    'POST /api/prefixes/88.100.7/handles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer boot-secret\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n',
  );
  const send = (text: string) => sock.write(`${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`);
  const line = (i: number) => `${JSON.stringify({ handle: `88.100.7/S-${i}`, values: [{ index: 1, type: 'URL', data: `https://x/${i}` }] })}\n`;
  send(line(1) + line(2) + line(3));
  await answer.waitFor('"line":2');
  s.child.kill('SIGTERM');
  // The node has begun its shutdown: the rest of the upload arrives after the signal was handled.
  await s.waitFor(/SIGTERM: shutting down/);
  send(line(4) + line(5));
  sock.write('0\r\n\r\n');
  await answer.waitFor('"summary"');
  t.match(answer.text(), /\{"summary":true,"total":5,"ok":5,"failed":0,"committedThroughLine":5\}/, 'the upload in flight finished');
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
