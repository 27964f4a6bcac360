/**
 * The PostgreSQL scenarios of `npm run bench` (pg-hot, pg-cold, pg-writes, pg-bulk,
 * pg-visibility): idnode nodes from `dist/` as child processes over a throwaway cluster made
 * by src/cli/pgcluster.ts in a temporary directory, removed at the end of each scenario
 * (pg-scale, at the end of this file, keeps its cluster in a cache directory instead).
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
import { bulkLine, recordBody, TEMPLATE_ITEMS, newRecordPuts } from './records.js';

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
      const opts: LoadOptions = {
        seconds: o.seconds,
        connections: o.connections,
        method: 'PUT',
        headers: { ...AUTH, 'content-type': 'application/json' },
        next: newRecordPuts(),
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

// pg-scale's own imports, kept with it at the end of the file.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readSync } from 'node:fs';
import { homedir, loadavg } from 'node:os';
import { pgBinDir } from '../src/cli/pgcluster.js';
import { etagOf } from '../src/registry/answer.js';
import { latestPgSchemaVersion } from '../src/store/postgres/migrations.js';

/** Records loaded over HTTP into each pg-scale database, then checked against the SQL generator. */
const SCALE_SEED = 1000;

/** 1M, 10M, 20k. */
function sizeLabel(n: number): string {
  return n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`;
}

/**
 * Where pg-scale keeps its cluster between runs: `$IDNODE_BENCH_CACHE`, else ~/.cache/idnode-bench
 * (/var/cache/idnode-bench for root: the `postgres` user that owns the cluster cannot enter
 * root's home). One directory per PostgreSQL schema version and server major version, so a
 * schema change rebuilds the fixtures.
 */
export function scaleCacheDir(): string {
  const base = process.env.IDNODE_BENCH_CACHE ?? (process.getuid?.() === 0 ? '/var/cache/idnode-bench' : join(homedir(), '.cache', 'idnode-bench'));
  const bin = pgBinDir();
  if (bin === undefined) throw new Error('pg-scale needs the PostgreSQL server binaries (initdb, pg_ctl); install the `postgresql` package');
  const major = /(\d+)/.exec(execFileSync(join(bin, 'postgres'), ['--version'], { encoding: 'utf8' }))?.[1] ?? 'x';
  return join(base, `pg-scale-schema${latestPgSchemaVersion()}-pg${major}`);
}

/** Removes fixture clusters of other schema versions (about 9 GB each) unless a server still runs on one. */
function removeStaleScaleDirs(dir: string): void {
  const base = join(dir, '..');
  for (const entry of readdirSync(base)) {
    const other = join(base, entry);
    if (!entry.startsWith('pg-scale-') || other === dir) continue;
    if (existsSync(join(other, 'primary', 'postmaster.pid'))) {
      process.stdout.write(`pg-scale: ${other} is another schema version's fixture, but a server may run on it: left in place\n`);
      continue;
    }
    process.stdout.write(`pg-scale: removing ${other} (another schema version's fixture)\n`);
    rmSync(other, { recursive: true, force: true });
  }
}

/**
 * The values_json of generated record i as a node stores it (coldLine's six values with the
 * ttl and timestamp a node adds), as a format() string: %1$s the URL's serial, %2$s the batch,
 * %3$s the timestamp. The seeded rows check it (buildScaleDb).
 */
function scaleValuesFormat(): string {
  const values = (JSON.parse(recordBody(0)).values as object[]).slice(0, 6).map((v) => ({ ...v, ttl: 86400, timestamp: '%3$s' }));
  return JSON.stringify(values).replace('PUMP-2026-00000000', 'PUMP-2026-%1$s').replace('PUMP-B2026-00000', 'PUMP-B2026-%2$s');
}

const SCALE_COLUMNS = 'handle_key, handle, prefix_key, values_json, public_json, max_age, expires_at, etag, version, updated_at, id';

/**
 * SELECT of the records rows a node writes for the cold scenario's identifiers, from `src`
 * (columns i bigint, ts text; $1 is scaleValuesFormat()): coldLine(i)'s handle, its stored
 * values, the public answer's ETag (sha1, base64url, as etagOf), version 1, id i + 1 (the
 * engine's max(id) + 1 when loaded in order).
 */
function scaleRows(src: string): string {
  const pad = (x: string, w: number) => `lpad((${x})::text, greatest(${w}, length((${x})::text)), '0')`;
  return `SELECT lower(h) COLLATE "C", h, '88.100.1' COLLATE "C", v, NULL::text, 86400, NULL::bigint,
      '"' || rtrim(translate(encode(digest('{"responseCode":1,"handle":"' || h || '","values":' || v || '}', 'sha1'), 'base64'), '+/', '-_'), '=') || '"',
      1, ts, i + 1
    FROM (SELECT i, ts, h, format($1, ${pad('i', 8)}, ${pad('(i + 499) / 500', 5)}, ts) AS v
      FROM (SELECT i, ts, '88.100.1/PUMP-2026-' || ${pad('i', 9)} AS h FROM ${src}) a) b`;
}

interface ScaleBuild {
  records: number;
  builtAt: string;
  seconds: number;
  steps: Record<string, number>;
}

/**
 * One pg-scale database of `n` records: a node creates the schema and loads the first
 * SCALE_SEED records over HTTP (with their versions and audit entries); the SQL generator must
 * reproduce those rows exactly, then it inserts the rest server-side (records only: versions,
 * audit and the change feed are not read by a lookup), sets the counters, VACUUM ANALYZE.
 */
async function buildScaleDb(cluster: PgCluster, n: number): Promise<ScaleBuild> {
  const db = `scale_${n}`;
  const t0 = performance.now();
  const steps: Record<string, number> = {};
  const lap = (name: string, since: number) => (steps[name] = Math.round((performance.now() - since) / 100) / 10);
  await cluster.primary.sql(`DROP DATABASE IF EXISTS ${db}`);
  await cluster.primary.sql(`CREATE DATABASE ${db}`);
  const seed = Math.min(n, SCALE_SEED);
  let t = performance.now();
  const node = await startPgNode({ url: cluster.primary.url(db) });
  try {
    await call(node.url, 'POST', '/api/prefixes', { prefix: '88.100.1', owner: { name: 'Bench' } });
    const file = join(node.dir, 'seed.ndjson');
    writeLines(file, seed, coldLine);
    const loaded = await upload(node.url, '88.100.1', file);
    if (loaded.summary.ok !== seed) throw new Error(`${db} seed load: ${JSON.stringify(loaded.summary)}`);
  } finally {
    await node.stop();
  }
  lap('schemaAndSeedOverHttp', t);
  const sql = postgres(cluster.primary.url(db), { max: 1, onnotice: () => {} });
  try {
    const fmt = scaleValuesFormat();
    await sql`CREATE EXTENSION pgcrypto`;
    const [diff] = await sql.unsafe(
      `SELECT count(*)::int AS n FROM (SELECT ${SCALE_COLUMNS} FROM records
         EXCEPT ALL ${scaleRows('(SELECT substring(handle from 20)::bigint AS i, updated_at AS ts FROM records) s')}) d`,
      [fmt],
    );
    if (diff!.n !== 0) throw new Error(`${db}: ${diff!.n} of the ${seed} rows a node wrote differ from what the SQL generator makes of them`);
    t = performance.now();
    // The node's own timestamp format: seconds, Z.
    const ts = `${new Date().toISOString().slice(0, 19)}Z`;
    const CHUNK = 1_000_000;
    for (let a = seed; a < n; a += CHUNK) {
      const b = Math.min(n, a + CHUNK) - 1;
      await sql.unsafe(`INSERT INTO records (${SCALE_COLUMNS}) ${scaleRows('(SELECT i, $2::text AS ts FROM generate_series($3::bigint, $4::bigint) i) s')}`, [
        fmt,
        ts,
        a,
        b,
      ]);
      process.stdout.write(`${db}: ${b + 1} records (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
    }
    lap('insertSelect', t);
    await sql`UPDATE record_counts SET n = ${n} WHERE prefix_key = '88.100.1'`;
    // The engine numbers a new row max(id) + 1 from the chain head's record_id.
    await sql`UPDATE chain_head SET record_id = ${n}`;
    await sql`DROP EXTENSION pgcrypto`;
    const [check] = await sql`SELECT count(*)::bigint AS count, max(id)::bigint AS max FROM records`;
    if (Number(check!.count) !== n || Number(check!.max) !== n) throw new Error(`${db}: ${check!.count} rows, max id ${check!.max}; expected ${n}`);
    t = performance.now();
    await sql`VACUUM ANALYZE`;
    await sql`CHECKPOINT`;
    lap('vacuumAnalyzeCheckpoint', t);
  } finally {
    await sql.end({ timeout: 5 });
  }
  return { records: n, builtAt: new Date().toISOString(), seconds: Math.round((performance.now() - t0) / 1000), steps };
}

/** Reads every file of a database once, so its pages are in the OS page cache before the runs; seconds taken. */
async function prewarm(server: PgServer, db: string): Promise<{ bytes: number; seconds: number }> {
  const oid = (await server.sql(`SELECT oid FROM pg_database WHERE datname = '${db}'`)).trim();
  const dir = join(server.dir, 'base', oid);
  const buf = Buffer.alloc(1 << 20);
  const t0 = performance.now();
  let bytes = 0;
  for (const f of readdirSync(dir)) {
    const fd = openSync(join(dir, f), 'r');
    try {
      for (let got = readSync(fd, buf); got > 0; got = readSync(fd, buf)) bytes += got;
    } finally {
      closeSync(fd);
    }
  }
  return { bytes, seconds: Math.round((performance.now() - t0) / 100) / 10 };
}

/** Bytes the PostgreSQL server's live processes read from storage (/proc/<pid>/io read_bytes): 0 when every page came from memory. */
function pgReadBytes(server: PgServer): number {
  const pid = Number(readFileSync(join(server.dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(entry) !== pid && Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== pid) continue;
      total += Number(/read_bytes: (\d+)/.exec(readFileSync(`/proc/${entry}/io`, 'utf8'))?.[1] ?? 0);
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return total;
}

/** Sizes of one database's records (its 16 partitions), the B-tree depth of their primary keys, and a lookup's EXPLAIN. */
async function scaleDbFacts(url: string, n: number): Promise<Record<string, unknown>> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [size] = await sql`SELECT sum(pg_table_size(relid))::bigint AS heap, sum(pg_indexes_size(relid))::bigint AS indexes,
        sum(pg_total_relation_size(relid))::bigint AS total, pg_database_size(current_database())::bigint AS database
      FROM pg_partition_tree('records') WHERE isleaf`;
    const [pkey] = await sql`SELECT sum(pg_relation_size(i.indexrelid))::bigint AS bytes FROM pg_index i
      JOIN pg_partition_tree('records') t ON t.relid = i.indrelid WHERE t.isleaf AND i.indisprimary`;
    await sql`CREATE EXTENSION IF NOT EXISTS pageinspect`;
    // bt_metap's level is the root's height above the leaves: a descent reads level + 1 index pages.
    const [depth] = await sql`SELECT min((bt_metap(i.indexrelid::regclass::text)).level) + 1 AS min,
        max((bt_metap(i.indexrelid::regclass::text)).level) + 1 AS max
      FROM pg_index i JOIN pg_partition_tree('records') t ON t.relid = i.indrelid WHERE t.isleaf AND i.indisprimary`;
    await sql`DROP EXTENSION pageinspect`;
    const key = `88.100.1/pump-2026-${String(Math.floor(Math.random() * n)).padStart(9, '0')}`;
    const explain = async () =>
      (
        await sql.unsafe(
          `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF)
            SELECT handle, values_json, public_json, max_age, expires_at, etag FROM records WHERE handle_key = '${key}'`,
        )
      ).map((r) => String(r['QUERY PLAN']).trim());
    const mib = (x: unknown) => Math.round(Number(x) / 1024 ** 2);
    return {
      recordsHeapMiB: mib(size!.heap),
      recordsIndexesMiB: mib(size!.indexes),
      recordsPrimaryKeyMiB: mib(pkey!.bytes),
      recordsTotalMiB: mib(size!.total),
      databaseMiB: mib(size!.database),
      primaryKeyLevels: depth!.min === depth!.max ? Number(depth!.min) : `${depth!.min}-${depth!.max}`,
      explainFirstTouch: await explain(),
      explainAgain: await explain(),
    };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Shared-buffer hits and reads (from the OS) of each database so far, after its backends' statistics are flushed. */
async function dbBlocks(server: PgServer, dbs: string[]): Promise<Map<string, { hit: number; read: number }>> {
  // An idle backend flushes its pending statistics within 10 s (PGSTAT_IDLE_INTERVAL).
  await new Promise((r) => setTimeout(r, 11_000));
  const out = new Map<string, { hit: number; read: number }>();
  for (const db of dbs) {
    const [hit, read] = (await server.sql(`SELECT blks_hit || ' ' || blks_read FROM pg_stat_database WHERE datname = '${db}'`)).trim().split(' ');
    out.set(db, { hit: Number(hit), read: Number(read) });
  }
  return out;
}

function uptimeLine(): string {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return `load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(', ')}`;
  }
}

/**
 * pg-scale: the pg-cold lookup (uniform keys, 8 MiB cache, nearly every request a point read
 * on PostgreSQL) on a database of --records (default 1,000,000) and one of ten times as many,
 * in one cluster; a node and a bare + lookup server on each and the bare server, alternating.
 * The fixtures are built server-side once (buildScaleDb) and kept in scaleCacheDir().
 * `--smoke`: 20,000 and 200,000 records.
 */
export async function pgScale(o: PgOptions & { records: number }): Promise<Outcome> {
  const sizes = o.smoke === true ? [20_000, 200_000] : [o.records, o.records * 10];
  const dir = scaleCacheDir();
  mkdirSync(dir, { recursive: true });
  removeStaleScaleDirs(dir);
  const uptimeBefore = uptimeLine();
  const cluster = await createPgCluster({ root: dir, fast: true, reuse: true });
  const started: Server[] = [];
  try {
    const markerFile = join(dir, 'fixtures.json');
    const marker = (existsSync(markerFile) ? JSON.parse(readFileSync(markerFile, 'utf8')) : {}) as Record<string, ScaleBuild>;
    const fixtures: Record<string, ScaleBuild & { reused: boolean }> = {};
    for (const n of sizes) {
      const reused = marker[n] !== undefined;
      if (!reused) {
        process.stdout.write(`pg-scale: building scale_${n} in ${dir}\n`);
        marker[n] = await buildScaleDb(cluster, n);
        writeFileSync(markerFile, `${JSON.stringify(marker, null, 2)}\n`);
        process.stdout.write(`pg-scale: built scale_${n} in ${marker[n].seconds} s\n`);
      }
      fixtures[sizeLabel(n)] = { ...marker[n]!, reused };
    }
    const warmed: Record<string, unknown> = {};
    for (const n of sizes) warmed[sizeLabel(n)] = await prewarm(cluster.primary, `scale_${n}`);
    const keys = (n: number) => (req: { path: string }) => {
      req.path = `/api/handles/88.100.1/PUMP-2026-${String(Math.floor(Math.random() * n)).padStart(9, '0')}`;
    };
    const nodes: Server[] = [];
    for (const n of sizes) {
      const node = await startPgNode({ url: cluster.primary.url(`scale_${n}`) }, { cache: { maxBytes: COLD_CACHE_BYTES } });
      started.push(node);
      nodes.push(node);
      // A generated row answers as a node's own write would: its stored ETag is the hash of the body.
      for (const [path, status] of [
        [`/api/handles/88.100.1/PUMP-2026-${String(n - 1).padStart(9, '0')}`, 200],
        [`/api/handles/88.100.1/PUMP-2026-${String(n).padStart(9, '0')}`, 404],
      ] as const) {
        const res = await fetch(node.url + path);
        const body = await res.text();
        if (res.status !== status) throw new Error(`scale_${n}: GET ${path} answered ${res.status}, expected ${status}`);
        if (status === 200 && res.headers.get('etag') !== etagOf(body)) throw new Error(`scale_${n}: the ETag of ${path} is not the hash of its answer`);
      }
    }
    const sample = Array.from({ length: 200 }, () => {
      const r = { path: '' };
      keys(sizes[0]!)(r);
      return r.path;
    });
    const bodyBytes = await meanAnswerBytes(nodes[0]!.url, sample);
    const bare = await startServer([BARE], { BARE_BODY_BYTES: String(bodyBytes) });
    started.push(bare);
    const floors: Server[] = [];
    for (const n of sizes) {
      const floor = await startServer([BARE], { BARE_BODY_BYTES: String(bodyBytes), BARE_PG: cluster.primary.url(`scale_${n}`) });
      started.push(floor);
      floors.push(floor);
    }
    const [small, big] = sizes.map(sizeLabel) as [string, string];
    const sides: Array<{ label: string; server: Server; n: number; pg?: string }> = [
      { label: 'bare', server: bare, n: sizes[0]! },
      ...sizes.map((n, i) => ({
        label: `bare + PostgreSQL lookup ${sizeLabel(n)}`,
        server: floors[i]!,
        n,
        pg: `PostgreSQL server (lookup ${sizeLabel(n)} runs)`,
      })),
      ...sizes.map((n, i) => ({ label: `idnode ${sizeLabel(n)}`, server: nodes[i]!, n, pg: `PostgreSQL server (idnode ${sizeLabel(n)} runs)` })),
    ];
    const out = new Map<string, LoadResult[]>();
    const readKiB = new Map<string, number[]>();
    for (const s of sides) {
      out.set(s.label, []);
      if (s.pg !== undefined) out.set(s.pg, []);
      await load(s.server, [], { seconds: 2, connections: o.connections, next: keys(s.n) });
    }
    const dbs = sizes.map((n) => `scale_${n}`);
    const blocks0 = await dbBlocks(cluster.primary, dbs);
    const lookups = new Map(dbs.map((db) => [db, 0]));
    for (let i = 0; i < o.runs; i++)
      // Every other run in reverse order: no side always follows the same one.
      for (const s of i % 2 === 0 ? sides : [...sides].reverse()) {
        const [pg0, io0] = [pgCpuMs(cluster.primary), pgReadBytes(cluster.primary)];
        const r = await load(s.server, [], { seconds: o.seconds, connections: o.connections, next: keys(s.n) });
        const [pgMs, io] = [pgCpuMs(cluster.primary) - pg0, pgReadBytes(cluster.primary) - io0];
        if (r.non2xx > 0 || r.errors > 0) throw new Error(`${s.label} run ${i}: ${r.non2xx} non-2xx, ${r.errors} errors`);
        out.get(s.label)!.push(r);
        if (s.pg === undefined) continue;
        lookups.set(`scale_${s.n}`, lookups.get(`scale_${s.n}`)! + r.requests);
        out.get(s.pg)!.push({ ...r, cpuMs: pgMs, cpuUsPerReq: (pgMs * 1000) / r.requests });
        readKiB.set(s.label, [...(readKiB.get(s.label) ?? []), io / 1024 / r.requests]);
        process.stdout.write(`run ${i + 1} ${s.label}: ${Math.round(r.rps)} req/s\n`);
      }
    const blocks1 = await dbBlocks(cluster.primary, dbs);
    // Per request of the measured runs on that database (a node's few cache hits and its change-feed polls included).
    const blocksPerRequest = Object.fromEntries(
      sizes.map((n) => {
        const [a, b, k] = [blocks0.get(`scale_${n}`)!, blocks1.get(`scale_${n}`)!, lookups.get(`scale_${n}`)!];
        return [sizeLabel(n), { hit: Math.round(((b.hit - a.hit) / k) * 100) / 100, read: Math.round(((b.read - a.read) / k) * 100) / 100 }];
      }),
    );
    const summary = Object.fromEntries([...out].map(([k, v]) => [k, summarise(v)]));
    const side = (label: string) => summary[label]!;
    const caches: Record<string, unknown> = {};
    for (const [i, n] of sizes.entries()) {
      const ready = await call(nodes[i]!.url, 'GET', '/readyz');
      caches[sizeLabel(n)] = { hits: ready.cache?.hits, misses: ready.cache?.misses, entries: ready.cache?.entries };
    }
    const facts: Record<string, unknown> = {};
    for (const n of sizes) facts[sizeLabel(n)] = await scaleDbFacts(cluster.primary.url(`scale_${n}`), n);
    const settings = (
      await cluster.primary.sql(
        "SELECT string_agg(name || ' ' || current_setting(name), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers', 'effective_cache_size', 'work_mem', 'max_connections', 'fsync', 'full_page_writes', 'random_page_cost')",
      )
    ).trim();
    const memInfo = readFileSync('/proc/meminfo', 'utf8');
    const gib = (field: string) => Math.round((Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(memInfo)?.[1] ?? 0) / 1024 ** 2) * 10) / 10;
    const ratio = (a: string, b: string, f: 'rps' | 'cpuUsPerReq') => side(a)[f] / side(b)[f];
    return {
      sides: summary,
      ratios: [
        { name: `throughput idnode ${big} / idnode ${small}`, value: ratio(`idnode ${big}`, `idnode ${small}`, 'rps'), target: '>= 0.90' },
        { name: `CPU per request idnode ${big} / idnode ${small}`, value: ratio(`idnode ${big}`, `idnode ${small}`, 'cpuUsPerReq') },
        {
          name: `throughput (bare + PostgreSQL lookup) ${big} / ${small}`,
          value: ratio(`bare + PostgreSQL lookup ${big}`, `bare + PostgreSQL lookup ${small}`, 'rps'),
        },
        {
          name: `PostgreSQL CPU per request, idnode ${big} / ${small}`,
          value: ratio(`PostgreSQL server (idnode ${big} runs)`, `PostgreSQL server (idnode ${small} runs)`, 'cpuUsPerReq'),
        },
        {
          name: `PostgreSQL CPU per request, lookup ${big} / ${small}`,
          value: ratio(`PostgreSQL server (lookup ${big} runs)`, `PostgreSQL server (lookup ${small} runs)`, 'cpuUsPerReq'),
        },
        { name: `throughput idnode ${big} / (bare + PostgreSQL lookup ${big})`, value: ratio(`idnode ${big}`, `bare + PostgreSQL lookup ${big}`, 'rps') },
        { name: `throughput idnode ${big} / bare`, value: ratio(`idnode ${big}`, 'bare', 'rps') },
      ],
      notes: {
        records: sizes,
        bodyBytes,
        cacheMaxBytes: COLD_CACHE_BYTES,
        caches,
        fixtures,
        fixtureNote: `built server-side: a node makes the schema and loads ${SCALE_SEED} records over HTTP, INSERT … SELECT FROM generate_series makes the rest (checked against the node's rows), VACUUM ANALYZE; versions and audit only for the HTTP-loaded records (a lookup reads neither)`,
        cacheDir: dir,
        prewarm: warmed,
        sharedBlocksPerRequest: blocksPerRequest,
        sharedBlocksNote:
          'pg_stat_database blks_hit (in shared_buffers) and blks_read (copied in from the OS page cache or storage) per request, idnode and bare + lookup runs on that database',
        pgDiskReadKiBPerRequest: Object.fromEntries([...readKiB].map(([k, v]) => [k, Math.round(median(v) * 100) / 100])),
        db: facts,
        pgSettings: settings,
        memTotalGiB: gib('MemTotal'),
        memAvailableGiBAfter: gib('MemAvailable'),
        uptimeBefore,
        uptimeAfter: uptimeLine(),
        fsync: 'off (reads only)',
        ...smokeNote(o),
      },
    };
  } finally {
    await Promise.all(started.map((s) => s.stop()));
    // Stopped, not destroyed: the next run starts on the same data directory.
    await cluster.primary.stop('fast');
  }
}

/**
 * pg-notfound: a flood of new unregistered identifiers (each asked once) on a seeded node over
 * PostgreSQL, with its key filter (the default) and on a second node with the filter off
 * (`cache.keyFilterMaxBytes` 0: every miss is a round trip to the primary), alternating with
 * the bare server.
 */
export async function pgNotFound(o: PgOptions): Promise<Outcome> {
  return withCluster({ fast: true }, async (cluster) => {
    await cluster.primary.sql('CREATE DATABASE idnode_off');
    const nodes = await Promise.all([
      startPgNode({ url: cluster.primary.url('idnode') }, { seed: true }),
      startPgNode({ url: cluster.primary.url('idnode_off') }, { seed: true, cache: { keyFilterMaxBytes: 0 } }),
    ]);
    const [node, off] = nodes;
    try {
      for (let i = 0; (await call(node.url, 'GET', '/readyz')).cache.keyFilter !== 'ready'; i++) {
        if (i > 600) throw new Error('the key filter was not filled within a minute');
        await new Promise((r) => setTimeout(r, 100));
      }
      let n = 0;
      const next = (req: { path: string }) => {
        req.path = `/api/handles/88.100.1/NOPE-${(n++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
      };
      const bodyBytes = (await (await fetch(`${node.url}/api/handles/88.100.1/NOPE-sample`)).arrayBuffer()).byteLength;
      const bare = await startServer([BARE], { BARE_BODY_BYTES: String(bodyBytes) });
      try {
        const opts = { seconds: o.seconds, connections: o.connections, next };
        const servers: Array<[string, Server]> = [
          ['bare', bare],
          ['idnode', node],
          ['idnode, key filter off', off],
        ];
        const runs = new Map<string, LoadResult[]>();
        const pgRuns = new Map<string, LoadResult[]>();
        for (const [label, server] of servers) {
          runs.set(label, []);
          pgRuns.set(label, []);
          await load(server, [], { ...opts, seconds: 2 });
        }
        for (let i = 0; i < o.runs; i++)
          for (const [label, server] of servers) {
            const pg0 = pgCpuMs(cluster.primary);
            const r = await load(server, [], opts);
            const pgMs = pgCpuMs(cluster.primary) - pg0;
            if (r.errors > 0) throw new Error(`${label} run ${i}: ${r.errors} errors`);
            runs.get(label)!.push(r);
            pgRuns.get(label)!.push({ ...r, cpuMs: pgMs, cpuUsPerReq: (pgMs * 1000) / r.requests });
          }
        const sides: Record<string, Side> = {};
        for (const [label] of servers) sides[label] = summarise(runs.get(label)!);
        sides['PostgreSQL server (during the idnode runs)'] = summarise(pgRuns.get('idnode')!);
        sides['PostgreSQL server (during the filter-off runs)'] = summarise(pgRuns.get('idnode, key filter off')!);
        const ready = await call(node.url, 'GET', '/readyz');
        const ratio = (a: string, b: string, k: 'rps' | 'cpuUsPerReq') => sides[a]![k] / sides[b]![k];
        return {
          sides,
          ratios: [
            { name: 'throughput idnode/bare', value: ratio('idnode', 'bare', 'rps') },
            { name: 'CPU per request idnode/bare', value: ratio('idnode', 'bare', 'cpuUsPerReq'), target: '<= 1.60' },
            { name: 'throughput idnode, key filter off/bare', value: ratio('idnode, key filter off', 'bare', 'rps') },
            { name: 'CPU per request idnode, key filter off/bare', value: ratio('idnode, key filter off', 'bare', 'cpuUsPerReq') },
          ],
          notes: {
            bodyBytes,
            keyFilter: ready.cache.keyFilter,
            keyFilterBytes: ready.cache.keyFilterBytes,
            filteredMisses: ready.cache.filtered,
            misses: ready.cache.misses,
            fsync: 'off (reads only)',
            ...smokeNote(o),
          },
        };
      } finally {
        await bare.stop();
      }
    } finally {
      await Promise.all(nodes.map((s) => s.stop()));
    }
  });
}
