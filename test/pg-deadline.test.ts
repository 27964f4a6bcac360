/**
 * A database that stops answering costs a bounded wait: real PostgreSQL servers frozen with
 * kill -STOP (to a client, a machine that froze or a network that drops everything: connections
 * stay open, nothing answers, no error ever comes), a node in this process with a small
 * `store.statementTimeoutMs`. Every test thaws its servers (kill -CONT) whatever happens.
 */
import t, { type Test } from 'tap';
import { createPgCluster, type PgCluster, type PgServer } from '../src/cli/pgcluster.js';
import { connectStore } from '../src/store/index.js';
import { ADMIN, type Client, eventually, ok, startNode } from './helpers.js';
import { freeze, pgMissing, postmasterPid } from './pg.js';

const missing = pgMissing();
if (missing !== undefined) {
  if (process.env.CI) t.fail(`PostgreSQL is required under CI: ${missing}`);
  else void t.skip(`PostgreSQL deadline tests skipped: ${missing}`, () => undefined);
} else {
  /** A primary with a database `idnode` (and a standby when asked), removed with the test. */
  async function cluster(t: Test, standby?: { sync: boolean }): Promise<{ pg: PgCluster; standby: PgServer | undefined }> {
    const pg = await createPgCluster({ fast: true });
    t.teardown(() => pg.destroy());
    await pg.primary.sql('CREATE DATABASE idnode');
    return { pg, standby: standby === undefined ? undefined : await pg.standby(standby) };
  }

  /** Small deadlines: the test waits for the answers, it never measures them. */
  const limits = { statementTimeoutMs: 1000, connectTimeoutMs: 1000 };
  const values = (v: string) => [{ index: 1, type: 'URL', data: `https://example.com/${v}` }];
  const put = (n: Client, id: string, v: string) => n.call('PUT', `/api/handles/${id}`, { token: ADMIN, body: values(v) });

  /** Freezes the server's postmaster and backends; thawed in teardown too, even when the test fails. */
  function frozen(t: Test, server: PgServer): () => void {
    const thaw = freeze(postmasterPid(server.dir));
    t.teardown(thaw);
    return thaw;
  }

  const refused = (t: Test, r: { status: number; headers: Headers; json: unknown }, what: string) =>
    t.match(
      { status: r.status, code: (r.json as { code?: unknown } | undefined)?.code, retryAfter: r.headers.get('retry-after') },
      { status: 503, code: 'IDN_UNAVAILABLE', retryAfter: /^\d+$/ },
      what,
    );

  const listeners = (pg: PgCluster) =>
    pg.primary.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'idnode' AND query ILIKE 'listen%'").then((s) => s.trim());

  t.test('a frozen primary: a write gets 503, a cached read answers, the node writes again once it thaws', async (t) => {
    const { pg } = await cluster(t);
    const n = await startNode(t, { store: { engine: 'postgres', url: pg.primary.url('idnode'), ...limits }, changes: { backstopMs: 100 } });
    const id = '88.100/FROZEN-1';
    await ok(put(n, id, 'before'));
    const hit = async () => ((await n.call('GET', `/api/handles/${id}`)).headers.get('cache-status') === 'idnode; hit' ? true : undefined);
    t.ok(await eventually('the answer is cached', hit, 5), 'cached before the freeze');
    await eventually('the node listens on the feed', async () => ((await listeners(pg)) === '1' ? true : undefined));

    const thaw = frozen(t, pg.primary);
    try {
      refused(t, await put(n, '88.100/FROZEN-2', 'during'), 'a write while the primary is frozen: 503 with Retry-After');
      // The stuck connections were replaced; the new ones cannot start either, and say so in time.
      refused(t, await put(n, '88.100/FROZEN-3', 'during'), 'and the next one too');
      const cached = await n.call('GET', `/api/handles/${id}`);
      t.equal(cached.status, 200, 'a cached answer while the primary is frozen');
      t.equal(cached.headers.get('cache-status'), 'idnode; hit');
    } finally {
      thaw();
    }
    // No restart: the next write that reaches a database that answers is stored.
    await eventually('the node writes again', async () => ((await put(n, '88.100/FROZEN-4', 'after')).status === 200 ? true : undefined));
    await ok(put(n, id, 'after'));
    t.equal((await n.call('GET', `/api/handles/${id}`)).json.values[0].data.value, 'https://example.com/after', 'its cache follows its writes');
    t.match(await ok(n.call('GET', '/api/audit/verify', { token: ADMIN })), { ok: true }, 'the chain verifies');
    await eventually('the node listens on the feed again', async () => ((await listeners(pg)) === '1' ? true : undefined));
  });

  t.test('a write transaction whose connection dies: 503, nothing more is sent on it, the process lives on', async (t) => {
    const { pg } = await cluster(t);
    const store = await connectStore({ engine: 'postgres', url: pg.primary.url('idnode'), ...limits });
    t.teardown(() => store.close());
    let started!: () => void;
    const inTransaction = new Promise<void>((r) => (started = r));
    let resume!: () => void;
    const resumed = new Promise<void>((r) => (resume = r));
    const refusal = store.write({ actor: 'test', action: 'test', target: 'x' }, async (tx) => {
      await tx.getRecord('88.100/a');
      started();
      await resumed;
      // postgres.js 3.4.9 would send this on the closed socket from a setImmediate, and crash the process.
      await tx.getRecord('88.100/b');
      return { result: 'stored', payload: null };
    });
    // It is refused while the test waits on psql: a handler from the start.
    const outcome = refusal.then(
      () => undefined,
      (e: unknown) => e,
    );
    await inTransaction;
    await pg.primary.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'idnode' AND state = 'idle in transaction'");
    t.match(await outcome, { code: 'IDN_UNAVAILABLE' }, 'the write is refused once its connection is gone');
    resume();
    // Its apply goes on, and what it sends fails; a crash would end this test file here.
    await new Promise((r) => setImmediate(r));
    t.equal(
      await store.write({ actor: 'test', action: 'test', target: 'y' }, async (tx) => ({ result: await tx.getRecord('88.100/c'), payload: null })),
      undefined,
      'the next write is stored',
    );
  });

  t.test('a frozen synchronous standby: writes get 503, cache misses are answered by the primary, all recover', async (t) => {
    const { pg, standby } = await cluster(t, { sync: true });
    const n = await startNode(t, {
      store: { engine: 'postgres', url: pg.primary.url('idnode'), readUrl: standby!.url('idnode'), ...limits },
      changes: { backstopMs: 100 },
    });
    const keys = Array.from({ length: 50 }, (_, k) => `88.100/MISS-${k}`);
    for (const id of keys.slice(0, 10)) await ok(put(n, id, id));
    // The rest in one bulk upload: none of them is in the node's cache.
    const body = keys
      .slice(10)
      .map((id) => JSON.stringify({ handle: id, values: values(id) }))
      .join('\n');
    await ok(n.call('POST', '/api/prefixes/88.100/handles', { token: ADMIN, headers: { 'content-type': 'application/x-ndjson' }, body }));

    const thaw = frozen(t, standby!);
    // Bulk-loaded keys: never read, so never in the cache.
    let k = 10;
    try {
      // The primary waits for the standby to apply the commit: the primary is stuck, not down.
      refused(t, await put(n, '88.100/SYNC-1', 'during'), 'a write while the synchronous standby is frozen: 503 with Retry-After');
      const first = await n.call('GET', `/api/handles/${keys[k++]}`);
      t.ok(first.status === 200 || first.status === 503, `the first cache miss waits for the standby at most the deadline (${first.status})`);
      if (first.status === 503) refused(t, first, 'and is refused with Retry-After');
      // Each try a key never read: a cache miss every time.
      const miss = await eventually(
        'a cache miss answered while the standby is frozen',
        async () => {
          const r = await n.call('GET', `/api/handles/${keys[k++]!}`);
          return r.status === 200 ? r : undefined;
        },
        40,
      );
      t.match(miss.headers.get('cache-status'), /uri-miss/, 'a miss: from the primary');
    } finally {
      thaw();
    }
    await eventually('the node writes again', async () => ((await put(n, '88.100/SYNC-2', 'after')).status === 200 ? true : undefined));
    const after = await n.call('GET', `/api/handles/${keys[k]!}`);
    t.equal(after.status, 200, 'a cache miss after the thaw');
    t.match(await ok(n.call('GET', '/api/audit/verify', { token: ADMIN })), { ok: true }, 'the chain verifies');
  });
}
