/**
 * The PostgreSQL scenarios of `npm run bench` (pg-hot, pg-cold, pg-writes, pg-bulk,
 * pg-visibility): idnode nodes from `dist/` as child processes over a throwaway cluster made
 * by src/cli/pgcluster.ts in a temporary directory, removed at the end of each scenario.
 * Besides each node's CPU, the PostgreSQL servers' own CPU (the postmaster and its children,
 * from /proc) is read before and after each run.
 */
import { closeSync, createReadStream, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { Pool } from 'undici';
import { createPgCluster, type PgCluster, type PgServer } from '../src/cli/pgcluster.js';
import { cpuMsOf, load, type LoadOptions, type LoadResult, median, type Server, startServer, TICK_MS } from './lib.js';
import { bulkLine, recordBody, TEMPLATE_ITEMS } from './records.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/bin.js');
const BARE = join(ROOT, 'dist/bench/bare.js');
const ADMIN = 'bench-admin-secret';
const AUTH = { authorization: `Bearer ${ADMIN}` };

export interface PgOptions {
  runs: number;
  seconds: number;
  connections: number;
  smoke?: boolean;
  /** Records loaded for pg-cold; pg-bulk uploads half as many. */
  pgRecords: number;
}

interface Side {
  runs: LoadResult[];
  rps: number;
  cpuUsPerReq: number;
  p99: number;
}

interface Outcome {
  sides: Record<string, Side>;
  ratios: Array<{ name: string; value: number; target?: string }>;
  notes: Record<string, unknown>;
}

function summarise(runs: LoadResult[]): Side {
  return { runs, rps: median(runs.map((r) => r.rps)), cpuUsPerReq: median(runs.map((r) => r.cpuUsPerReq)), p99: median(runs.map((r) => r.p99)) };
}

/**
 * CPU time (ms) of one PostgreSQL server: the postmaster with the time of children it has
 * reaped (cutime, cstime), plus every live child (backends, walwriter, walsender, startup…).
 */
export function pgCpuMs(server: PgServer): number {
  const pid = Number(readFileSync(join(server.dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const own = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = own.slice(own.lastIndexOf(')') + 2).split(' ');
  let total = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * TICK_MS;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) total += cpuMsOf(Number(entry));
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return total;
}

/**
 * Samples what the database's active backends wait on (pg_stat_activity, every 50 ms) until
 * stopped: the share of samples per wait event ("CPU" when a backend is running), so a run
 * says whether it waits on the chain head's lock, on the standby, on fsync or on the client.
 */
function sampleWaits(url: string, db: string): { stop(): Promise<Record<string, number>> } {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const tally = new Map<string, number>();
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      // "idle in transaction": a backend holding its transaction open while the node prepares its next statement.
      const rows = await sql`SELECT CASE WHEN state = 'active' THEN coalesce(wait_event_type || ':' || wait_event, 'CPU') ELSE state END AS w
        FROM pg_stat_activity WHERE datname = ${db} AND state IN ('active', 'idle in transaction') AND pid <> pg_backend_pid()`;
      for (const r of rows) tally.set(r.w as string, (tally.get(r.w as string) ?? 0) + 1);
      samples++;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await sql.end({ timeout: 1 });
      // Mean number of backends in each state per sample: 0.5 means half a backend on average.
      return Object.fromEntries(
        [...tally]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 8)
          .map(([w, n]) => [w, Math.round((n / Math.max(1, samples)) * 100) / 100]),
      );
    },
  };
}

async function withCluster<T>(opts: { fast: boolean; standby?: boolean }, fn: (c: PgCluster, standby: PgServer | undefined) => Promise<T>): Promise<T> {
  const cluster = await createPgCluster({ fast: opts.fast });
  try {
    await cluster.primary.sql('CREATE DATABASE idnode');
    const standby = opts.standby === true ? await cluster.standby({ sync: true }) : undefined;
    return await fn(cluster, standby);
  } finally {
    await cluster.destroy();
  }
}

/** Starts an idnode child over PostgreSQL (`store` as in the README), its config in a new temp dir. */
async function startPgNode(store: { url: string; readUrl?: string }, config: Record<string, unknown> = {}): Promise<Server & { dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'idnode-bench-pg-'));
  const extra = JSON.parse(process.env.BENCH_NODE_CONFIG ?? '{}') as Record<string, unknown>;
  const file = join(dir, 'config.json');
  writeFileSync(
    file,
    JSON.stringify({ db: join(dir, 'idnode.db'), listen: { port: 0 }, logLevel: 'warn', store: { engine: 'postgres', ...store }, ...config, ...extra }),
  );
  // PG_BENCH_NODE_ARGS: node flags for every node (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" for a profile).
  const flags = (process.env.PG_BENCH_NODE_ARGS ?? '').split(' ').filter((f) => f !== '');
  const server = await startServer([...flags, CLI, 'serve', '--config', file], { IDNODE_ADMIN_TOKEN: ADMIN }, dir).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  return {
    ...server,
    dir,
    stop: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function call(url: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(url + path, {
    method,
    headers: { ...AUTH, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text === '' ? undefined : JSON.parse(text);
}

async function meanAnswerBytes(url: string, paths: string[]): Promise<number> {
  let bytes = 0;
  for (const p of paths) bytes += (await (await fetch(url + p)).arrayBuffer()).byteLength;
  return Math.round(bytes / paths.length);
}

/** POSTs an NDJSON file to a prefix's bulk route; the summary line and the seconds it took. */
async function upload(url: string, prefix: string, file: string): Promise<{ summary: { ok: number; failed: number; total: number }; seconds: number }> {
  const t0 = performance.now();
  const res = await fetch(`${url}/api/prefixes/${prefix}/handles?overwrite=false`, {
    method: 'POST',
    headers: { ...AUTH, 'content-type': 'application/x-ndjson' },
    body: createReadStream(file),
    duplex: 'half',
  });
  let tail = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) tail = (tail + Buffer.from(chunk).toString('utf8')).slice(-400);
  return { summary: JSON.parse(tail.trim().split('\n').at(-1)!), seconds: (performance.now() - t0) / 1000 };
}

function writeLines(file: string, n: number, line: (i: number) => string): void {
  const fd = openSync(file, 'w');
  for (let i = 0; i < n; i += 10_000) {
    const lines: string[] = [];
    for (let j = i; j < Math.min(n, i + 10_000); j++) lines.push(line(j));
    writeSync(fd, `${lines.join('\n')}\n`);
  }
  closeSync(fd);
}

/**
 * Alternates bare, the optional bare + PostgreSQL lookup floor, and idnode runs as run.ts
 * does; around each run of a side that reads PostgreSQL it also reads the primary's CPU,
 * reported as a side of its own (the same requests, PostgreSQL's CPU).
 */
async function alternateWithPg(bare: Server, node: Server, primary: PgServer, opts: LoadOptions, runs: number, floor?: Server): Promise<Record<string, Side>> {
  const servers: Array<[string, Server]> = [['bare', bare], ...(floor ? [['bare + PostgreSQL lookup', floor] as [string, Server]] : []), ['idnode', node]];
  const out = new Map<string, LoadResult[]>();
  const pgLabel = (label: string) => (label === 'idnode' ? 'PostgreSQL server (during the idnode runs)' : 'PostgreSQL server (during the bare + lookup runs)');
  for (const [label, server] of servers) {
    out.set(label, []);
    if (label !== 'bare') out.set(pgLabel(label), []);
    await load(server, [], { ...opts, seconds: 2 });
  }
  for (let i = 0; i < runs; i++)
    for (const [label, server] of servers) {
      const pg0 = pgCpuMs(primary);
      const r = await load(server, [], opts);
      const pgMs = pgCpuMs(primary) - pg0;
      if (r.non2xx > 0 || r.errors > 0) throw new Error(`${label} run ${i}: ${r.non2xx} non-2xx, ${r.errors} errors`);
      out.get(label)!.push(r);
      if (label !== 'bare') out.get(pgLabel(label))!.push({ ...r, cpuMs: pgMs, cpuUsPerReq: (pgMs * 1000) / r.requests });
    }
  return Object.fromEntries([...out].map(([k, v]) => [k, summarise(v)]));
}

function smokeNote(o: PgOptions): Record<string, unknown> {
  return o.smoke === true ? { smoke: true, note: 'smoke run on a busy machine: checks the script works; not a measurement' } : {};
}

function resolutionRatios(sides: Record<string, Side>, targets: { rps?: string; cpu?: string }): Outcome['ratios'] {
  const pg = sides['PostgreSQL server (during the idnode runs)']!;
  return [
    { name: 'throughput idnode/bare', value: sides.idnode!.rps / sides.bare!.rps, ...(targets.rps ? { target: targets.rps } : {}) },
    { name: 'CPU per request idnode/bare', value: sides.idnode!.cpuUsPerReq / sides.bare!.cpuUsPerReq, ...(targets.cpu ? { target: targets.cpu } : {}) },
    { name: 'CPU per request (idnode + PostgreSQL)/bare', value: (sides.idnode!.cpuUsPerReq + pg.cpuUsPerReq) / sides.bare!.cpuUsPerReq },
  ];
}

/** pg-hot: cache hits on a node over PostgreSQL (the seeded identifiers, every answer cached). */
export async function pgHot(o: PgOptions): Promise<Outcome> {
  return withCluster({ fast: true }, async (cluster) => {
    const node = await startPgNode({ url: cluster.primary.url('idnode') }, { seed: true });
    try {
      const paths: string[] = [];
      for (const prefix of ['88.100.1', '88.100.2', '88.100.3'])
        for (const h of (await call(node.url, 'GET', `/api/handles?prefix=${prefix}&pageSize=10000`)).handles as string[]) paths.push(`/api/handles/${h}`);
      // Twice: the cache admits an identifier on its second request.
      await meanAnswerBytes(node.url, paths);
      const bodyBytes = await meanAnswerBytes(node.url, paths);
      const bare = await startServer([BARE], { BARE_BODY_BYTES: String(bodyBytes) });
      try {
        const next = (req: { path: string }) => {
          req.path = paths[Math.floor(Math.random() * paths.length)]!;
        };
        const sides = await alternateWithPg(bare, node, cluster.primary, { seconds: o.seconds, connections: o.connections, next }, o.runs);
        const ready = await call(node.url, 'GET', '/readyz');
        return {
          sides,
          ratios: resolutionRatios(sides, { rps: '>= 0.90', cpu: '<= 1.20' }),
          notes: { keys: paths.length, bodyBytes, cacheHits: ready.cache?.hits, cacheMisses: ready.cache?.misses, fsync: 'off (reads only)', ...smokeNote(o) },
        };
      } finally {
        await bare.stop();
      }
    } finally {
      await node.stop();
    }
  });
}

const COLD_CACHE_BYTES = 8 * 1024 * 1024;

/** One cold-read record under 88.100.1 (six public values, about 450 bytes). */
function coldLine(i: number): string {
  const values = (JSON.parse(recordBody(i)).values as object[]).slice(0, 6);
  return JSON.stringify({ handle: `88.100.1/PUMP-2026-${String(i).padStart(9, '0')}`, values });
}

/**
 * pg-cold: uniform random keys over `pgRecords` identifiers (loaded by bulk NDJSON) with an
 * 8 MiB cache: nearly every request is a point read on the PostgreSQL primary.
 */
export async function pgCold(o: PgOptions): Promise<Outcome> {
  return withCluster({ fast: true }, async (cluster) => {
    const node = await startPgNode({ url: cluster.primary.url('idnode') }, { cache: { maxBytes: COLD_CACHE_BYTES } });
    try {
      await call(node.url, 'POST', '/api/prefixes', { prefix: '88.100.1', owner: { name: 'Bench' } });
      const file = join(node.dir, 'records.ndjson');
      writeLines(file, o.pgRecords, coldLine);
      const loaded = await upload(node.url, '88.100.1', file);
      rmSync(file);
      if (loaded.summary.ok !== o.pgRecords) throw new Error(`load: ${JSON.stringify(loaded.summary)}`);
      process.stdout.write(`loaded ${o.pgRecords} records in ${loaded.seconds.toFixed(1)} s\n`);
      await cluster.primary.sql('VACUUM ANALYZE', 'idnode');
      const next = (req: { path: string }) => {
        req.path = `/api/handles/88.100.1/PUMP-2026-${String(Math.floor(Math.random() * o.pgRecords)).padStart(9, '0')}`;
      };
      const sample = Array.from({ length: 200 }, () => {
        const r = { path: '' };
        next(r);
        return r.path;
      });
      const bodyBytes = await meanAnswerBytes(node.url, sample);
      const bare = await startServer([BARE], { BARE_BODY_BYTES: String(bodyBytes) });
      const barePg = await startServer([BARE], { BARE_BODY_BYTES: String(bodyBytes), BARE_PG: cluster.primary.url('idnode') });
      try {
        const opts = { seconds: o.seconds, connections: o.connections, next };
        const sides = await alternateWithPg(bare, node, cluster.primary, opts, o.runs, barePg);
        const ready = await call(node.url, 'GET', '/readyz');
        const pg = sides['PostgreSQL server (during the idnode runs)']!;
        const floor = sides['bare + PostgreSQL lookup']!;
        const floorPg = sides['PostgreSQL server (during the bare + lookup runs)']!;
        return {
          sides,
          ratios: [
            ...resolutionRatios(sides, { rps: '>= 0.75', cpu: '<= 1.60' }),
            { name: 'PostgreSQL CPU per request / bare', value: pg.cpuUsPerReq / sides.bare!.cpuUsPerReq },
            { name: 'throughput idnode/(bare + PostgreSQL lookup)', value: sides.idnode!.rps / floor.rps },
            { name: 'CPU per request idnode/(bare + PostgreSQL lookup)', value: sides.idnode!.cpuUsPerReq / floor.cpuUsPerReq },
            { name: 'PostgreSQL CPU per request, idnode / bare + lookup', value: pg.cpuUsPerReq / floorPg.cpuUsPerReq },
          ],
          notes: {
            records: o.pgRecords,
            loadSeconds: Math.round(loaded.seconds * 10) / 10,
            bodyBytes,
            cacheMaxBytes: COLD_CACHE_BYTES,
            cacheEntriesAtEnd: ready.cache?.entries,
            cacheHits: ready.cache?.hits,
            cacheMisses: ready.cache?.misses,
            fsync: 'off (reads only)',
            ...smokeNote(o),
          },
        };
      } finally {
        await Promise.all([bare.stop(), barePg.stop()]);
      }
    } finally {
      await node.stop();
    }
  });
}

/** Percentile of a sorted array (nearest rank). */
function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/**
 * pg-writes: audited single writes (PUT of a new identifier, history on) from two nodes at
 * once, `connections` clients each, over a primary with a synchronous standby (remote_apply),
 * fsync on. Median of `runs` runs; writes/s is the sum over both nodes.
 */
export async function pgWrites(o: PgOptions): Promise<Outcome> {
  return withCluster({ fast: false, standby: true }, async (cluster, standby) => {
    const url = cluster.primary.url('idnode');
    const one = await startPgNode({ url });
    const two = await startPgNode({ url, readUrl: standby!.url('idnode') });
    try {
      await call(one.url, 'POST', '/api/prefixes', { prefix: '88.100.9', owner: { name: 'Bench Works' } });
      let serial = 0;
      const opts: LoadOptions = {
        seconds: o.seconds,
        connections: o.connections,
        method: 'PUT',
        headers: { ...AUTH, 'content-type': 'application/json' },
        next: (req) => {
          serial++;
          req.path = `/api/handles/88.100.9/PUMP-2026-${String(serial).padStart(8, '0')}?overwrite=false`;
          req.body = recordBody(serial);
        },
      };
      const runs = { one: [] as LoadResult[], two: [] as LoadResult[], both: [] as LoadResult[], primary: [] as LoadResult[], standby: [] as LoadResult[] };
      const commits = async () => Number((await cluster.primary.sql("SELECT xact_commit FROM pg_stat_database WHERE datname = 'idnode'")).trim());
      let commitsPerWrite: number[] = [];
      await Promise.all([load(one, [], { ...opts, seconds: 2 }), load(two, [], { ...opts, seconds: 2 })]);
      const waits = sampleWaits(url, 'idnode');
      for (let i = 0; i < o.runs; i++) {
        const [p0, s0, c0] = [pgCpuMs(cluster.primary), pgCpuMs(standby!), await commits()];
        const [a, b] = await Promise.all([load(one, [], opts), load(two, [], opts)]);
        const [pMs, sMs] = [pgCpuMs(cluster.primary) - p0, pgCpuMs(standby!) - s0];
        for (const x of [a, b]) if (x.non2xx > 0 || x.errors > 0) throw new Error(`run ${i}: ${x.non2xx} non-2xx, ${x.errors} errors`);
        const requests = a.requests + b.requests;
        const both: LoadResult = {
          requests,
          rps: a.rps + b.rps,
          p50: Math.max(a.p50, b.p50),
          p99: Math.max(a.p99, b.p99),
          non2xx: 0,
          errors: 0,
          cpuMs: a.cpuMs + b.cpuMs,
          cpuUsPerReq: ((a.cpuMs + b.cpuMs) * 1000) / requests,
        };
        runs.one.push(a);
        runs.two.push(b);
        runs.both.push(both);
        runs.primary.push({ ...both, cpuMs: pMs, cpuUsPerReq: (pMs * 1000) / requests });
        runs.standby.push({ ...both, cpuMs: sMs, cpuUsPerReq: (sMs * 1000) / requests });
        // pg_stat counters are flushed about once a second: read them after a pause.
        await new Promise((r) => setTimeout(r, 1500));
        commitsPerWrite.push((await commits()) - c0);
        commitsPerWrite[i] = commitsPerWrite[i]! / requests;
        process.stdout.write(`run ${i + 1}: ${Math.round(both.rps)} writes/s (node 1 ${Math.round(a.rps)}, node 2 ${Math.round(b.rps)})\n`);
      }
      const waitEvents = await waits.stop();
      const verdict = await call(one.url, 'GET', '/api/audit/verify');
      if (verdict.ok !== true) throw new Error(`audit chain broken after the run: ${JSON.stringify(verdict)}`);
      const sides = {
        'node 1 (writes/s)': summarise(runs.one),
        'node 2 (writes/s)': summarise(runs.two),
        'both nodes (writes/s)': summarise(runs.both),
        'PostgreSQL primary (per write)': summarise(runs.primary),
        'PostgreSQL standby (per write)': summarise(runs.standby),
      };
      const total = sides['both nodes (writes/s)'];
      commitsPerWrite = commitsPerWrite.map((x) => Math.round(x * 1000) / 1000);
      return {
        sides,
        ratios: [{ name: 'writes/s (2 nodes) / 2,000 target', value: total.rps / 2000, target: '>= 1.00' }],
        notes: {
          clientsPerNode: o.connections,
          nodes: 2,
          medianWritesPerSecond: Math.round(total.rps),
          p50msPerNode: [median(runs.one.map((r) => r.p50)), median(runs.two.map((r) => r.p50))],
          p99msPerNode: [median(runs.one.map((r) => r.p99)), median(runs.two.map((r) => r.p99))],
          primaryCommitsPerWrite: commitsPerWrite,
          commitsNote:
            'xact_commit of the idnode database on the primary per write, read transactions included (change feed, listing): an upper bound on transactions per write; writes per batch is the inverse of its write part',
          waitEvents,
          waitEventsNote:
            "active backends of the idnode database per pg_stat_activity sample (every 50 ms, whole run incl. pauses), by wait event; CPU: not waiting; idle in transaction: waiting for the node's next statement",
          auditEntriesVerified: verdict.checked,
          synchronousCommit: 'remote_apply, one synchronous standby',
          fsync: 'on',
          recordBodyBytes: recordBody(1).length,
          ...smokeNote(o),
        },
      };
    } finally {
      await Promise.all([one.stop(), two.stop()]);
    }
  });
}

/**
 * pg-bulk: `pgRecords / 2` generated records with a template of 8 items (the bulk
 * scenario's lines) over HTTP NDJSON into a fresh database per run, history and audit on,
 * fsync on, no standby. Records/s of the upload, CPU per record of the node and of PostgreSQL.
 */
export async function pgBulk(o: PgOptions): Promise<Outcome> {
  const n = Math.max(1, Math.floor(o.pgRecords / 2));
  const cluster = await createPgCluster({ fast: false });
  const dir = mkdtempSync(join(tmpdir(), 'idnode-bench-pgbulk-'));
  try {
    const file = join(dir, 'records.ndjson');
    writeLines(file, n, (i) => bulkLine(i + 1));
    const runs = { idnode: [] as LoadResult[], pg: [] as LoadResult[] };
    let checked = 0;
    const waitEvents: Array<Record<string, number>> = [];
    for (let r = 0; r < o.runs; r++) {
      const db = `idnode_bulk_${r}`;
      await cluster.primary.sql(`CREATE DATABASE ${db}`);
      const node = await startPgNode({ url: cluster.primary.url(db) });
      try {
        await call(node.url, 'POST', '/api/prefixes', { prefix: '88.100.9', owner: { name: 'Bench Works' } });
        await call(node.url, 'PUT', '/api/templates/88.100.9/1', { items: TEMPLATE_ITEMS });
        const [c0, p0] = [node.cpuMs(), pgCpuMs(cluster.primary)];
        const waits = sampleWaits(cluster.primary.url(db), db);
        const res = await upload(node.url, '88.100.9', file);
        const [cpu, pgMs] = [node.cpuMs() - c0, pgCpuMs(cluster.primary) - p0];
        waitEvents.push(await waits.stop());
        if (res.summary.ok !== n) throw new Error(`run ${r}: ${JSON.stringify(res.summary)}`);
        const base = { requests: n, rps: n / res.seconds, p50: 0, p99: 0, non2xx: 0, errors: 0 };
        runs.idnode.push({ ...base, cpuMs: cpu, cpuUsPerReq: (cpu * 1000) / n });
        runs.pg.push({ ...base, cpuMs: pgMs, cpuUsPerReq: (pgMs * 1000) / n });
        process.stdout.write(`run ${r + 1}: ${Math.round(n / res.seconds)} records/s\n`);
        if (r === o.runs - 1) {
          const verdict = await call(node.url, 'GET', '/api/audit/verify');
          if (verdict.ok !== true) throw new Error(`audit chain broken after the import: ${JSON.stringify(verdict)}`);
          checked = verdict.checked;
        }
      } finally {
        await node.stop();
      }
      await cluster.primary.sql(`DROP DATABASE ${db}`);
    }
    const sides = { 'idnode (records/s)': summarise(runs.idnode), 'PostgreSQL server (per record)': summarise(runs.pg) };
    return {
      sides,
      ratios: [{ name: 'records/s / 30,000 target', value: sides['idnode (records/s)'].rps / 30_000, target: '>= 1.00' }],
      notes: {
        records: n,
        chunkSize: 1000,
        auditEntriesVerified: checked,
        fsync: 'on',
        standby: 'none',
        waitEvents: waitEvents.at(-1),
        waitEventsNote:
          "last run: active backends of its database per pg_stat_activity sample (every 50 ms), by wait event; CPU: not waiting; idle in transaction: waiting for the node's next statement",
        ...smokeNote(o),
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await cluster.destroy();
  }
}

/**
 * pg-visibility: a PUT on node 1 (on the primary), then node 2 (cache misses read from the
 * synchronous standby) is asked again and again until it answers the new value. Each
 * identifier is in node 2's cache before its write, so the change feed must evict it.
 * Latency from the PUT's answer to node 2's first new answer.
 */
export async function pgVisibility(o: PgOptions): Promise<Outcome> {
  const writes = o.smoke === true ? 30 : Math.max(30, o.runs * 100);
  return withCluster({ fast: false, standby: true }, async (cluster, standby) => {
    const url = cluster.primary.url('idnode');
    const one = await startPgNode({ url });
    const two = await startPgNode({ url, readUrl: standby!.url('idnode') });
    const p1 = new Pool(one.url, { connections: 1 });
    const p2 = new Pool(two.url, { connections: 1 });
    try {
      await call(one.url, 'POST', '/api/prefixes', { prefix: '88.100.9', owner: { name: 'Bench Works' } });
      const KEYS = 10;
      const handle = (k: number) => `88.100.9/VIS-${k}`;
      const put = async (k: number, v: string) => {
        const r = await p1.request({
          path: `/api/handles/${handle(k)}`,
          method: 'PUT',
          headers: { ...AUTH, 'content-type': 'application/json' },
          body: JSON.stringify([{ index: 1, type: 'URL', data: `https://bench.example/${v}` }]),
        });
        const text = await r.body.text();
        if (r.statusCode >= 300) throw new Error(`PUT ${handle(k)}: ${r.statusCode} ${text}`);
      };
      const get = async (k: number) => {
        const r = await p2.request({ path: `/api/handles/${handle(k)}`, method: 'GET' });
        return { status: r.statusCode, text: await r.body.text(), cache: String(r.headers['cache-status'] ?? '') };
      };
      for (let k = 0; k < KEYS; k++) {
        await put(k, `v0-${k}`);
        // Until node 2 answers it, then twice more so it is admitted to the cache.
        while (!(await get(k)).text.includes(`v0-${k}`));
        await get(k);
        await get(k);
      }
      const latencies: number[] = [];
      const putMs: number[] = [];
      let polls = 0;
      let cachedBefore = 0;
      for (let i = 1; i <= writes; i++) {
        const k = i % KEYS;
        // Twice: admission caches an identifier on its second request within the window.
        await get(k);
        const before = await get(k);
        if (before.cache.includes('hit')) cachedBefore++;
        const t0 = performance.now();
        await put(k, `v${i}-${k}`);
        const t1 = performance.now();
        putMs.push(t1 - t0);
        for (;;) {
          polls++;
          if ((await get(k)).text.includes(`v${i}-${k}`)) break;
          if (performance.now() - t1 > 30_000) throw new Error(`node 2 still answers the old value of ${handle(k)} 30 s after the write`);
        }
        latencies.push(performance.now() - t1);
      }
      const s = [...latencies].sort((a, b) => a - b);
      const w = [...putMs].sort((a, b) => a - b);
      const r2 = (x: number) => Math.round(x * 100) / 100;
      const dist = { p50: r2(pct(s, 50)), p90: r2(pct(s, 90)), p99: r2(pct(s, 99)), max: r2(s[s.length - 1]!) };
      process.stdout.write(`visibility ms: ${JSON.stringify(dist)}\n`);
      return {
        sides: {},
        ratios: [
          { name: 'visibility p99 / 250 ms target', value: dist.p99 / 250, target: '<= 1.00' },
          { name: 'visibility p50 / 250 ms target', value: dist.p50 / 250 },
        ],
        notes: {
          writes,
          keys: KEYS,
          visibilityMs: dist,
          putMs: { p50: r2(pct(w, 50)), p99: r2(pct(w, 99)), max: r2(w[w.length - 1]!) },
          cachedOnNode2BeforeWrite: cachedBefore,
          pollsPerWrite: r2(polls / writes),
          measuredFrom: "the PUT's answer on node 1 to node 2's first answer with the new value",
          standby: 'synchronous (remote_apply), node 2 reads its misses there',
          fsync: 'on',
          ...smokeNote(o),
        },
      };
    } finally {
      await Promise.all([p1.close(), p2.close()]);
      await Promise.all([one.stop(), two.stop()]);
    }
  });
}
