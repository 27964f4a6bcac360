import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configKeys, envName, loadConfig } from '../src/config.js';

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
  const dir = t.testdir({});
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
  const dir = t.testdir({});
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
