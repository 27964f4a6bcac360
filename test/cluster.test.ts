/**
 * Many nodes over one PostgreSQL cluster, as real processes: idnode nodes in child processes
 * over a primary and a streaming standby started by src/cli/pgcluster.ts. Node 1 reads and
 * writes on the primary; node 2 writes on the primary and reads from the standby.
 */
import t, { type Test } from 'tap';
import { performance } from 'node:perf_hooks';
import { createPgCluster, type PgCluster, type PgServer } from '../src/cli/pgcluster.js';
import { eventually, node, ok, type Proc, tempDir } from './helpers.js';
import { pgMissing } from './pg.js';

const missing = pgMissing();
if (missing !== undefined) {
  if (process.env.CI) t.fail(`PostgreSQL is required under CI: ${missing}`);
  else void t.skip(`PostgreSQL cluster tests skipped: ${missing}`, () => undefined);
} else {
  /** A primary with a database `idnode` and one standby (synchronous or not), removed with the test. */
  async function cluster(t: Test, sync: boolean): Promise<{ pg: PgCluster; standby: PgServer; url: string; readUrl: string }> {
    const pg = await createPgCluster({ fast: true });
    t.teardown(() => pg.destroy());
    await pg.primary.sql('CREATE DATABASE idnode');
    const standby = await pg.standby({ sync });
    return { pg, standby, url: pg.primary.url('idnode'), readUrl: standby.url('idnode') };
  }

  /** Node 1 on the primary, node 2 reading from the standby; both running. */
  async function twoNodes(t: Test, url: string, readUrl: string, extra: Record<string, unknown> = {}): Promise<[Proc, Proc]> {
    const dir = tempDir(t);
    // One database, one admin: the first node to start creates the admin token from its secret.
    const n1 = await node(t, dir, 'n1', { homed: ['88.100'], store: { engine: 'postgres', url }, ...extra }, 'cluster-admin');
    await n1.start();
    const n2 = await node(t, dir, 'n2', { homed: ['88.100'], store: { engine: 'postgres', url, readUrl }, ...extra }, 'cluster-admin');
    await n2.start();
    return [n1, n2];
  }

  const values = (v: string) => [{ index: 1, type: 'URL', data: `https://example.com/${v}` }];
  const urlOf = (answer: { json: { values?: Array<{ data: { value: string } }> } }) => answer.json.values?.[0]?.data.value;

  /** Asks node `n` until it answers `want` for `id` (a cross-process change: no event reaches the test). */
  const answers = (n: Proc, id: string, want: string | undefined) =>
    eventually(`${n.url} answers ${want ?? 'not found'} for ${id}`, async () => {
      const r = await n.call('GET', `/api/handles/${id}`);
      return (want === undefined ? r.status === 404 : urlOf(r) === `https://example.com/${want}`) ? r : undefined;
    });

  t.test('a write on one node is in the other’s answers; a create clears a cached not-found', async (t) => {
    const { url, readUrl } = await cluster(t, false);
    const [n1, n2] = await twoNodes(t, url, readUrl);
    const id = '88.100/VIS-1';
    // Cached not-found on node 2 (asked twice: admission stores a key's second miss).
    await n2.call('GET', `/api/handles/${id}`);
    t.equal((await n2.call('GET', `/api/handles/${id}`)).status, 404);
    t.equal((await n2.call('GET', `/api/handles/${id}`)).headers.get('cache-status'), 'idnode; hit', 'the not-found is cached');
    await ok(n1.call('PUT', `/api/handles/${id}`, { token: n1.admin, body: values('v0') }), 200);
    await answers(n2, id, 'v0');

    const lags: number[] = [];
    for (let i = 1; i <= 20; i++) {
      // Node 2 holds the previous version in its cache, so each round proves an eviction, not a miss.
      t.equal((await n2.call('GET', `/api/handles/${id}`)).headers.get('cache-status'), 'idnode; hit');
      const start = performance.now();
      await ok(n1.call('PUT', `/api/handles/${id}`, { token: n1.admin, body: values(`v${i}`) }));
      await answers(n2, id, `v${i}`);
      lags.push(performance.now() - start);
      await n2.call('GET', `/api/handles/${id}`);
    }
    lags.sort((a, b) => a - b);
    t.comment(`write on node 1 → in node 2's answers (ms): p50 ${lags[10]!.toFixed(1)}, max ${lags[19]!.toFixed(1)}`);
    const del = await n2.call('DELETE', `/api/handles/${id}`, { token: n2.admin });
    t.equal(del.status, 200, `node 2 writes on the primary too: ${del.text}`);
    await answers(n1, id, undefined);
  });

  t.test('a node whose LISTEN connection is terminated during writes converges', async (t) => {
    const { pg, url, readUrl } = await cluster(t, false);
    const [n1, n2] = await twoNodes(t, url, readUrl);
    const id = '88.100/LOST-1';
    await ok(n1.call('PUT', `/api/handles/${id}`, { token: n1.admin, body: values('a') }), 200);
    await answers(n2, id, 'a');
    await n2.call('GET', `/api/handles/${id}`);
    const listeners = async () => (await pg.primary.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'idnode' AND query ILIKE 'listen%'")).trim();
    t.equal(await listeners(), '2', 'each node listens on the feed');
    // Both nodes' notifications are lost while their LISTEN connections are down.
    const writes = Promise.all(['b', 'c', 'd'].map((v, i) => ok(n1.call('PUT', `/api/handles/88.100/LOST-${i + 2}`, { token: n1.admin, body: values(v) }))));
    await pg.primary.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'idnode' AND query ILIKE 'listen%'");
    await ok(n1.call('PUT', `/api/handles/${id}`, { token: n1.admin, body: values('e') }));
    await writes;
    await answers(n2, id, 'e');
    await answers(n2, '88.100/LOST-4', 'd');
    await eventually('both nodes listen again', async () => ((await listeners()) === '2' ? true : undefined));
  });

  t.test('paused standby replay: a node never re-caches a row older than the change that evicted it', async (t) => {
    const { standby, url, readUrl } = await cluster(t, false);
    const [n1, n2] = await twoNodes(t, url, readUrl);
    const id = '88.100/LAG-1';
    await ok(n1.call('PUT', `/api/handles/${id}`, { token: n1.admin, body: values('old') }), 200);
    await answers(n2, id, 'old');
    await n2.call('GET', `/api/handles/${id}`);
    await standby.sql('SELECT pg_wal_replay_pause()');
    t.teardown(() => standby.sql('SELECT pg_wal_replay_resume()').catch(() => undefined));
    await ok(n1.call('PUT', `/api/handles/${id}`, { token: n1.admin, body: values('new') }));
    // The standby still has 'old'; node 2 learnt of the change from the primary.
    await answers(n2, id, 'new');
    for (let i = 0; i < 3; i++) t.equal(urlOf(await n2.call('GET', `/api/handles/${id}`)), 'https://example.com/new', 'and keeps answering it');
    await standby.sql('SELECT pg_wal_replay_resume()');
    t.equal(urlOf(await n2.call('GET', `/api/handles/${id}`)), 'https://example.com/new');
  });

  t.test('2 nodes × 32 writers: records, prefixes, events and bulk keep one gapless chain', async (t) => {
    const { url, readUrl } = await cluster(t, true);
    const [n1, n2] = await twoNodes(t, url, readUrl);
    const nodes = [n1, n2];
    await ok(n1.call('PUT', '/api/handles/88.100/SHARED', { token: n1.admin, body: values('first') }), 200);
    const jobs: Array<Promise<unknown>> = [];
    for (let w = 0; w < 64; w++) {
      const n = nodes[w % 2]!;
      jobs.push(
        (async () => {
          for (let i = 0; i < 4; i++) {
            const kind = (w + i) % 4;
            if (kind === 0) await ok(n.call('PUT', `/api/handles/88.100/W${w}-${i}`, { token: n.admin, body: values(`${w}-${i}`) }), 200);
            else if (kind === 1) await ok(n.call('PUT', '/api/handles/88.100/SHARED', { token: n.admin, body: values(`${w}-${i}`) }));
            else if (kind === 2)
              await ok(n.call('POST', '/api/prefixes', { token: n.admin, body: { prefix: `88.100.${w * 10 + i + 1}`, owner: { name: `E${w}` } } }), 201);
            else {
              const body = Array.from({ length: 5 }, (_, k) => JSON.stringify({ handle: `88.100/B${w}-${i}-${k}`, values: values(`b${k}`) })).join('\n');
              const r = await n.call('POST', '/api/prefixes/88.100/handles', { token: n.admin, headers: { 'content-type': 'application/x-ndjson' }, body });
              if (r.status !== 200) throw new Error(`bulk: ${r.status} ${r.text}`);
            }
          }
        })(),
      );
    }
    await Promise.all(jobs);
    for (const n of nodes) t.match(await ok(n.call('GET', '/api/audit/verify', { token: n.admin })), { ok: true }, `the chain verifies on ${n.url}`);
    const seqs: number[] = [];
    let after = 0;
    for (;;) {
      const page = await ok(n1.call('GET', `/api/audit?after=${after}&limit=1000`, { token: n1.admin }));
      for (const e of page.entries as Array<{ seq: number }>) seqs.push(e.seq);
      if (page.next === null) break;
      after = page.next as number;
    }
    t.same(
      seqs,
      Array.from({ length: seqs.length }, (_, i) => i + 1),
      'seq is contiguous from 1',
    );
    const history = await ok(n2.call('GET', '/api/history/88.100/SHARED', { token: n2.admin }));
    const versions = (history.versions as Array<{ version: number }>).map((v) => v.version);
    t.same(
      versions,
      Array.from({ length: versions.length }, (_, i) => i + 1),
      'one version per write of the shared record, none twice',
    );
  });
}
