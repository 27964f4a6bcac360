/**
 * Many nodes over one PostgreSQL cluster, as real processes: idnode nodes in child processes
 * over a primary and a streaming standby started by src/cli/pgcluster.ts. Node 1 reads and
 * writes on the primary; node 2 writes on the primary and reads from the standby.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createPgCluster, type PgCluster, type PgServer } from '../src/cli/pgcluster.js';
import { cleanEnv, client, type Client, eventually, freeDemoBase, node, ok, type Proc, tempDir, watch } from './helpers.js';
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
  async function twoNodes(
    t: Test,
    url: string,
    readUrl: string,
    extra: Record<string, unknown> = {},
    store: Record<string, unknown> = {},
  ): Promise<[Proc, Proc]> {
    const dir = tempDir(t);
    // One database, one admin: the first node to start creates the admin token from its secret.
    const n1 = await node(t, dir, 'n1', { homed: ['88.100'], store: { engine: 'postgres', url, ...store }, ...extra }, 'cluster-admin');
    await n1.start();
    const n2 = await node(t, dir, 'n2', { homed: ['88.100'], store: { engine: 'postgres', url, readUrl, ...store }, ...extra }, 'cluster-admin');
    await n2.start();
    return [n1, n2];
  }

  const values = (v: string) => [{ index: 1, type: 'URL', data: `https://example.com/${v}` }];
  const urlOf = (answer: { json: { values?: Array<{ data: { value: string } }> } }) => answer.json.values?.[0]?.data.value;

  /** Asks node `n` until it answers `want` for `id` (a cross-process change: no event reaches the test). */
  const answers = (n: Client, id: string, want: string | undefined) =>
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
    // 64 writers queue for one chain head behind a synchronous standby: on a busy machine a write
    // can wait longer than the 5 s default deadline (seen once in CI). The deadline is not what this checks.
    const [n1, n2] = await twoNodes(t, url, readUrl, {}, { statementTimeoutMs: 60_000 });
    const nodes = [n1, n2];
    await ok(n1.call('PUT', '/api/handles/88.100/SHARED', { token: n1.admin, body: values('first') }), 200);
    const jobs: Array<Promise<unknown>> = [];
    for (let w = 0; w < 64; w++) {
      const n = nodes[w % 2]!;
      jobs.push(
        (async () => {
          for (let i = 0; i < 5; i++) {
            const kind = (w + i) % 5;
            if (kind === 0) await ok(n.call('PUT', `/api/handles/88.100/W${w}-${i}`, { token: n.admin, body: values(`${w}-${i}`) }), 200);
            else if (kind === 1) await ok(n.call('PUT', '/api/handles/88.100/SHARED', { token: n.admin, body: values(`${w}-${i}`) }));
            else if (kind === 4) {
              const event = {
                type: 'aggregation',
                action: 'ADD',
                parent: '88.100/SHARED',
                children: [`88.100/PART-${w}-${i}`],
                eventTime: '2026-03-01T08:00:00Z',
              };
              await ok(n.call('POST', '/api/events', { token: n.admin, body: event }), 201);
            } else if (kind === 2)
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

  t.test('kill -9 of a node mid-bulk: committed chunks stay, the chain verifies, another node carries on', async (t) => {
    const { url, readUrl } = await cluster(t, false);
    const [n1, n2] = await twoNodes(t, url, readUrl, { bulk: { chunkSize: 100 } });
    const lines = Array.from({ length: 20_000 }, (_, k) => JSON.stringify({ handle: `88.100/K-${k}`, values: values(`k${k}`) })).join('\n');
    const upload = fetch(`${n1.url}/api/prefixes/88.100/handles`, {
      method: 'POST',
      headers: { authorization: `Bearer ${n1.admin}`, 'content-type': 'application/x-ndjson' },
      body: lines,
    })
      .then((r) => r.text())
      .catch(() => '');
    // Killed once some chunks are committed (seen from the other node), before the last one is.
    await answers(n2, '88.100/K-150', 'k150');
    await n1.kill('SIGKILL');
    await upload;
    t.match(await ok(n2.call('GET', '/api/audit/verify', { token: n2.admin })), { ok: true }, 'the chain verifies after the kill');
    const listed = await ok(n2.call('GET', '/api/handles?prefix=88.100&pageSize=0', { token: n2.admin }));
    const count = listed.totalCount as number;
    t.ok(count >= 200 && count < 20_000 && count % 100 === 0, `whole chunks only: ${count} records`);
    await ok(n2.call('PUT', '/api/handles/88.100/AFTER-KILL', { token: n2.admin, body: values('after') }));
    await n1.start();
    await answers(n1, '88.100/AFTER-KILL', 'after');
  });

  t.test('failover: crash the primary, promote the synchronous standby; nothing acknowledged is lost', async (t) => {
    const { pg, standby } = await cluster(t, true);
    const both = `postgres://postgres@127.0.0.1:${pg.primary.port},127.0.0.1:${standby.port}/idnode?target_session_attrs=primary`;
    // A small deadline: connections to the killed primary's backends that never answer are replaced soon.
    const [n1, n2] = await twoNodes(t, both, standby.url('idnode'), { changes: { backstopMs: 100 } }, { statementTimeoutMs: 2000, connectTimeoutMs: 2000 });
    const id = '88.100/FAIL-1';
    await ok(n1.call('PUT', `/api/handles/${id}`, { token: n1.admin, body: values('before') }));
    await answers(n2, id, 'before');
    await n2.call('GET', `/api/handles/${id}`);

    const acknowledged: string[] = [];
    const refused: Array<{ status: number; retryAfter: string | null; code: unknown }> = [];
    let stop = false;
    const writer = (async () => {
      for (let k = 0; !stop; k++) {
        // A write cut off by the kill may or may not have committed: only a 200 counts as acknowledged.
        const r = await fetch(`${n1.url}/api/handles/88.100/ACK-${k}`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${n1.admin}`, 'content-type': 'application/json' },
          body: JSON.stringify(values(`a${k}`)),
          signal: AbortSignal.timeout(20_000),
        }).then(
          async (res) => ({ status: res.status, headers: res.headers, json: JSON.parse(await res.text()) as unknown }),
          (err: Error) => ({ status: 0, headers: new Headers(), json: { code: err.name } }),
        );
        if (r.status === 200) acknowledged.push(`88.100/ACK-${k}`);
        else refused.push({ status: r.status, retryAfter: r.headers.get('retry-after'), code: (r.json as { code?: unknown } | undefined)?.code });
      }
    })();
    // The writer stops with the test, whatever happens to it.
    t.teardown(() => {
      stop = true;
      return writer;
    });
    await eventually('some writes acknowledged', async () => (acknowledged.length >= 5 ? true : undefined));
    // A crash of the primary: kill -9 of its postmaster. Its backends may outlive it for a while,
    // holding connections that never answer: the engine's deadline gives up on those and
    // replaces them (store.statementTimeoutMs).
    pg.primary.kill();
    // Reads go on while there is no primary: from the cache here.
    t.equal(urlOf(await n2.call('GET', `/api/handles/${id}`)), 'https://example.com/before', 'a cached answer during the outage');
    await standby.promote();
    const promotedAt = acknowledged.length;
    await eventually('writes acknowledged by the new primary', async () => (acknowledged.length >= promotedAt + 5 ? true : undefined), 1200).catch(
      (err: Error) => {
        throw new Error(`${err.message}; refused since: ${JSON.stringify(refused.slice(-3))}`);
      },
    );
    stop = true;
    await writer;
    for (const r of refused)
      t.match(
        r,
        { status: 503, retryAfter: /^\d+$/, code: 'IDN_UNAVAILABLE' },
        `refused while there was no primary: 503 with Retry-After (${JSON.stringify(r)})`,
      );
    t.comment(`${acknowledged.length} writes acknowledged, ${refused.length} refused during the failover`);
    // A connection node 2 held to the killed primary may fail on its first use since (503, Retry-After): ask again then.
    const read = (path: string) =>
      eventually(`node 2 answers ${path}`, async () => {
        const r = await n2.call('GET', path);
        return r.status === 503 && r.headers.get('retry-after') !== null ? undefined : r;
      });
    // auth=true reads the store itself: every acknowledged write is there.
    for (const h of acknowledged) t.equal((await read(`/api/handles/${h}?auth=true`)).status, 200, `${h} was acknowledged and is there`);
    // Plain reads ask node 2's key filter first, which learns another node's new identifiers from the
    // change feed (docs/API.md §3.1): after the failover, the feed on the new primary brings them too.
    for (const h of acknowledged)
      await eventually(`node 2's plain answer for ${h}`, async () => ((await n2.call('GET', `/api/handles/${h}`)).status === 200 ? true : undefined));
    t.pass('node 2 answers every acknowledged identifier once its change feed reads the new primary');
    const verify = await eventually('node 2 reads the new primary', async () => {
      const r = await n2.call('GET', '/api/audit/verify', { token: n2.admin });
      return r.status === 503 && r.headers.get('retry-after') !== null ? undefined : r;
    });
    t.equal(verify.status, 200, verify.text);
    t.match(verify.json, { ok: true }, 'the chain verifies on the new primary');
  });

  t.test('idnode demo --postgres: two nodes over a primary and a standby, stopped by SIGTERM', async (t) => {
    const dir = tempDir(t);
    const base = await freeDemoBase();
    const bin = fileURLToPath(new URL('../src/cli/bin.ts', import.meta.url));
    const child = spawn(process.execPath, [...process.execArgv, bin, 'demo', '--postgres', '--base-port', String(base), '--dir', join(dir, 'demo')], {
      cwd: dir,
      env: { ...cleanEnv, IDNODE_SHEDDING_EVENT_LOOP_DELAY_MS: '0' },
    });
    const w = watch(child);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    t.teardown(() => child.kill('SIGKILL'));
    await w.waitFor(/one chain for both nodes/);
    const root = /data in (\S+)/.exec(w.output())![1]!;
    const [one, two] = [`http://127.0.0.1:${base}`, `http://127.0.0.1:${base + 1}`];
    // The README's commands, as printed.
    const put = await fetch(`${one}/api/handles/88.100.1/DEMO-1`, {
      method: 'PUT',
      headers: { authorization: 'Bearer demo-admin-token', 'content-type': 'application/json' },
      body: JSON.stringify(values('p/1')),
    });
    t.equal(put.status, 200);
    await answers(client(two), '88.100.1/DEMO-1', 'p/1');
    t.equal((await fetch(`${two}/api/handles/88.100.1/ENGINE-2026-000001`)).status, 200, 'node 1 seeded the shared database');
    const verify = await fetch(`${two}/api/audit/verify`, { headers: { authorization: 'Bearer demo-admin-token' } });
    t.match(await verify.json(), { ok: true });
    child.kill('SIGTERM');
    t.equal(await exited, 0);
    t.notOk(existsSync(root), 'the cluster directory is removed');
  });
}
