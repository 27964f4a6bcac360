import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONFIG_KEYS, configKeys, defaultConfig, envName, loadConfig, renderConfigHelp, renderConfigTable, type KeySpec } from '../src/config.js';
import { readmeConfigTable, replaceConfigTable, TABLE_BEGIN, TABLE_END } from '../src/config/docs.js';
import { tempDir } from './helpers.js';

const README = fileURLToPath(new URL('../README.md', import.meta.url));
const DOCS_SCRIPT = fileURLToPath(new URL('../src/config/docs.ts', import.meta.url));

t.test('defaults are the embedded secondary node', async (t) => {
  const c = loadConfig({ env: {} });
  t.same(c.listen, { host: '127.0.0.1', port: 8000 });
  t.equal(c.db, 'data/idnode.db');
  t.same(c.homed, ['88.100']);
  t.equal(c.baseUrl, 'http://127.0.0.1:8000');
  t.equal(c.cache.maxBytes, 268435456);
  t.equal(c.seed, false);
});

t.test('file, then environment', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ listen: { port: 8001 }, homed: ['88'], upstream: { url: 'http://127.0.0.1:9/' }, cache: { maxBytes: 1000 } }));
  const c = loadConfig({ file, env: { IDNODE_LISTEN_PORT: '8002', IDNODE_HOMED: '88.1, 88.2', IDNODE_SEED: 'true', IDNODE_ADMIN_TOKEN: 'x' } });
  t.equal(c.listen.port, 8002);
  t.same(c.homed, ['88.1', '88.2']);
  t.equal(c.upstream.url, 'http://127.0.0.1:9', 'trailing slash dropped');
  t.equal(c.cache.maxBytes, 1000);
  t.equal(c.seed, true);
  t.equal(envName('upstream.timeoutMs'), 'IDNODE_UPSTREAM_TIMEOUT_MS');
  t.ok(configKeys().some((k) => k.env === 'IDNODE_CACHE_MAX_BYTES'));
});

t.test('unknown keys and bad values stop the start, naming the key', async (t) => {
  const dir = tempDir(t);
  const write = (obj: unknown) => {
    const f = join(dir, `${Math.random()}.json`);
    writeFileSync(f, typeof obj === 'string' ? obj : JSON.stringify(obj));
    return f;
  };
  const cases: Array<[Parameters<typeof loadConfig>[0], RegExp]> = [
    [{ file: write({ lisen: {} }), env: {} }, /unknown config key "lisen"/],
    [{ file: write({ listen: { prot: 1 } }), env: {} }, /unknown config key "listen.prot"/],
    [{ file: write({ listen: { port: 70000 } }), env: {} }, /"listen.port" must be an integer from 0 to 65535/],
    [{ file: write({ listen: 5 }), env: {} }, /"listen" must be an object/],
    [{ file: write({ homed: ['88..1'] }), env: {} }, /"homed": "88..1" is not a valid prefix/],
    [{ file: write({ homed: '88' }), env: {} }, /"homed" must be a list/],
    [{ file: write({ upstream: { url: 'ftp://x' } }), env: {} }, /"upstream.url" must be an http\(s\) URL/],
    [{ file: write({ upstream: { url: 5 } }), env: {} }, /"upstream.url" must be a string URL/],
    [{ file: write({ seed: 'yes' }), env: {} }, /"seed" must be true or false/],
    [{ file: write({ db: 5 }), env: {} }, /"db" must be a string/],
    [{ file: write({ logLevel: 'loud' }), env: {} }, /"logLevel" must be one of/],
    [{ file: write('{not json'), env: {} }, /cannot read config file/],
    [{ file: join(dir, 'missing.json'), env: {} }, /cannot read config file/],
    [{ env: { IDNODE_LISTEN_PORT: 'abc' } }, /IDNODE_LISTEN_PORT \(config key "listen.port"\) must be an integer/],
    [{ env: { IDNODE_SEED: 'maybe' } }, /IDNODE_SEED .* must be true or false/],
    [{ env: { IDNODE_LISTEN_PROT: '1' } }, /unknown environment variable IDNODE_LISTEN_PROT/],
  ];
  for (const [opts, msg] of cases) t.throws(() => loadConfig(opts), { name: 'ConfigError', message: msg }, String(msg));
});

t.test('the Config type is inferred from the schema, not any', async (t) => {
  const c = loadConfig({ env: {} });
  const port: number = c.listen.port;
  const homed: string[] = c.homed;
  // @ts-expect-error listen.port is a number (fails to typecheck if Config degrades to any)
  const wrong: string = c.listen.port;
  // @ts-expect-error no such key (fails to typecheck if groups accept any member)
  void c.listen.prot;
  // @ts-expect-error logLevel is one of the declared levels
  c.logLevel = 'loud';
  t.equal(port, 8000);
  t.same(homed, ['88.100']);
  t.equal(typeof wrong, 'number');
});

t.test('every key is declared once: env name by convention, default within its bounds', async (t) => {
  const keys = configKeys();
  t.equal(keys.length, Object.keys(CONFIG_KEYS).length);
  t.equal(new Set(keys.map((k) => k.env)).size, keys.length, 'env names are unique');
  for (const [key, spec] of Object.entries(CONFIG_KEYS) as Array<[string, KeySpec]>) {
    t.equal(spec.env, envName(key), `${key}: env follows the naming convention`);
    t.ok(spec.doc.length > 0, `${key}: described`);
    if (spec.kind === 'int') {
      t.ok(spec.min <= spec.default && spec.default <= spec.max, `${key}: default ${spec.default} within ${spec.min}..${spec.max}`);
      t.ok(Number.isSafeInteger(spec.max), `${key}: has a finite maximum`);
    }
    if (spec.kind === 'enum') t.ok(spec.values.includes(spec.default), `${key}: default is an allowed value`);
    // The default, given explicitly through the environment, must be accepted and read back the same.
    const raw = Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default);
    const c = loadConfig({ env: { [spec.env]: raw } }) as unknown as Record<string, Record<string, unknown>>;
    const [group, name] = key.split('.');
    const back = name === undefined ? c[group!] : c[group!]![name];
    if (key !== 'baseUrl') t.same(back, spec.default, `${key}: default round-trips through ${spec.env}`);
  }
  const d = defaultConfig();
  t.equal(d.baseUrl, '', 'baseUrl is derived by loadConfig, not a fixed default');
  d.homed.push('88.999');
  t.same(defaultConfig().homed, ['88.100'], 'a caller changing its config does not change the default');
});

t.test('every integer key: its bounds are accepted, one past them is refused naming the key', async (t) => {
  // lineage.defaultDepth may not exceed lineage.maxDepth: both ends of each are tried with the other out of the way.
  const base = { lineage: { defaultDepth: CONFIG_KEYS['lineage.defaultDepth'].min, maxDepth: CONFIG_KEYS['lineage.maxDepth'].max } };
  for (const [key, spec] of Object.entries(CONFIG_KEYS) as Array<[string, KeySpec]>) {
    if (spec.kind !== 'int') continue;
    for (const [value, ok] of [
      [spec.min, true],
      [spec.max, true],
      [spec.min - 1, false],
      [spec.max + 1, false],
    ] as const) {
      const env = { [spec.env]: String(value) };
      if (ok) t.doesNotThrow(() => loadConfig({ overrides: base, env }), `${key} = ${value} accepted`);
      else
        t.throws(
          () => loadConfig({ overrides: base, env }),
          { name: 'ConfigError', message: `${spec.env} (config key "${key}") must be an integer from ${spec.min} to ${spec.max}, got "${value}"` },
          `${key} = ${value} refused`,
        );
    }
  }
});

t.test('text, URL and list keys have maxima too; keys checked together', async (t) => {
  const cases: Array<[Parameters<typeof loadConfig>[0], RegExp]> = [
    [{ overrides: { db: 'd'.repeat(4097) }, env: {} }, /config key "db" must be at most 4096 characters long, got 4097/],
    [{ env: { IDNODE_LISTEN_HOST: 'h'.repeat(254) } }, /IDNODE_LISTEN_HOST \(config key "listen.host"\) must be at most 253 characters long/],
    [{ overrides: { baseUrl: `http://x/${'p'.repeat(2048)}` }, env: {} }, /config key "baseUrl" must be at most 2048 characters long/],
    [{ overrides: { homed: Array.from({ length: 1001 }, (_, i) => `88.${i + 1}`) }, env: {} }, /config key "homed" must list at most 1000 prefixes, got 1001/],
    [{ overrides: { lineage: { defaultDepth: 60 } }, env: {} }, /"lineage.defaultDepth" \(60\) must not exceed "lineage.maxDepth" \(50\)/],
    [{ env: { IDNODE_STORE_ENGINE: 'postgres' } }, /"store.url" must name the PostgreSQL primary when "store.engine" is postgres/],
    [{ env: { IDNODE_STORE_ENGINE: 'postgres', IDNODE_STORE_URL: 'mysql://x/y' } }, /"store.url" must be a postgres:\/\/ URL/],
    [{ env: { IDNODE_STORE_READ_URL: 'http://standby/' } }, /"store.readUrl" must be a postgres:\/\/ URL/],
    [{ env: { IDNODE_LOG_LEVEL: 'loud' } }, /IDNODE_LOG_LEVEL \(config key "logLevel"\) must be one of fatal, error, warn, info, debug, trace, silent/],
  ];
  for (const [opts, msg] of cases) t.throws(() => loadConfig(opts), { name: 'ConfigError', message: msg }, String(msg));
  t.equal(loadConfig({ overrides: { db: 'd'.repeat(4096) }, env: {} }).db.length, 4096, 'the maximum itself is accepted');
  t.equal(loadConfig({ overrides: { homed: Array.from({ length: 1000 }, (_, i) => `88.${i + 1}`) }, env: {} }).homed.length, 1000);
  const pg = loadConfig({ env: { IDNODE_STORE_ENGINE: 'postgres', IDNODE_STORE_URL: 'postgresql://idnode@db1,db2/idnode?target_session_attrs=primary' } });
  t.same([pg.store.engine, pg.store.url, pg.store.readUrl], ['postgres', 'postgresql://idnode@db1,db2/idnode?target_session_attrs=primary', '']);
  t.equal(loadConfig({ env: {} }).store.engine, 'sqlite', 'the embedded engine is the default');
  t.equal(loadConfig({ env: { IDNODE_HISTORY: '' } }).history, false, 'an empty boolean variable is false');
  t.equal(loadConfig({ env: { IDNODE_LISTEN_HOST: '::1' } }).baseUrl, 'http://[::1]:8000', 'derived baseUrl brackets IPv6');
});

t.test("README's Configuration table is the one the schema renders", async (t) => {
  const readme = readFileSync(README, 'utf8');
  const table = readmeConfigTable(readme);
  t.ok(table !== undefined, `README.md has the ${TABLE_BEGIN} … ${TABLE_END} markers`);
  t.equal(table, renderConfigTable(), 'README.md is stale: run npm run docs:config');
  for (const { key, env } of configKeys()) t.match(table, `| \`${key}\` | \`${env}\` |`, `${key} has its row`);
});

t.test('replaceConfigTable rewrites only the text between the markers', async (t) => {
  const stale = `# x\n\nbefore\n${TABLE_BEGIN}\n| old | table |\n${TABLE_END}\nafter\n`;
  const fresh = replaceConfigTable(stale);
  t.equal(fresh, `# x\n\nbefore\n${TABLE_BEGIN}\n${renderConfigTable()}\n${TABLE_END}\nafter\n`);
  t.equal(replaceConfigTable(fresh), fresh, 'idempotent');
  t.throws(() => replaceConfigTable('# no markers\n'), /no <!-- config:begin --> … <!-- config:end --> markers/);
  t.equal(readmeConfigTable('# no markers\n'), undefined);
});

t.test('npm run docs:config (the script) rewrites a stale table in the README it is given', async (t) => {
  const dir = tempDir(t, { 'README.md': `intro\n${TABLE_BEGIN}\n| stale |\n${TABLE_END}\nrest\n` });
  const file = join(dir, 'README.md');
  // The same TypeScript loader tap gave this process, as package.json's docs:config uses.
  const run = () => spawnSync(process.execPath, [...process.execArgv, DOCS_SCRIPT, file], { encoding: 'utf8', timeout: 60_000 });
  const first = run();
  t.equal(first.status, 0, first.stderr);
  t.match(first.stdout, /config table rewritten/);
  t.equal(readmeConfigTable(readFileSync(file, 'utf8')), renderConfigTable());
  t.match(readFileSync(file, 'utf8'), /^intro\n[\s\S]*\nrest\n$/, 'text around the markers kept');
  const second = run();
  t.equal(second.status, 0, second.stderr);
  t.match(second.stdout, /already up to date/);
});

t.test('help text: every key with its variable, default, bounds and description', async (t) => {
  const help = renderConfigHelp(100);
  for (const [key, spec] of Object.entries(CONFIG_KEYS) as Array<[string, KeySpec]>) {
    t.match(help, `\n  ${key} (${spec.env}): default `, `${key} listed`);
    t.match(help.replace(/\s+/g, ' '), spec.doc.replace(/`/g, ''), `${key} described`);
  }
  t.match(help, /listen\.port \(IDNODE_LISTEN_PORT\): default 8000; integer 0 – 65535/);
  t.match(help, /cache\.maxBytes \(IDNODE_CACHE_MAX_BYTES\): default 268435456 \(256 MiB\)/);
  t.match(help, /IDNODE_ADMIN_TOKEN/);
  t.notMatch(help, /`/, 'no markdown backticks in terminal text');
  for (const line of help.split('\n')) if (line.startsWith('      ')) t.ok(line.length <= 100, `description line fits: ${line}`);
});
