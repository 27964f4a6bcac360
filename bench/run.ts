/**
 * `npm run bench [-- <scenario>...] [--runs N] [--seconds S] [--connections C] [--smoke]`
 *
 * Every scenario runs idnode (the built CLI, as a child process on a fresh SQLite file) and a
 * bare node:http server answering a body of the same size, with the same autocannon client
 * script, alternating runs, and reports medians, the ratios, and each server's CPU time per
 * request (read from /proc before and after each run: the client shares the 2 cores, so
 * throughput alone mostly measures the client). Results go to bench/results/.
 */
import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { HandleValue } from '../src/registry/values.js';
import { answerEtag, renderRecord } from '../src/registry/answer.js';
import { openStore } from '../src/store/index.js';
import { load, type LoadOptions, type LoadResult, median, runInfo, type Server, startServer } from './lib.js';
import { createSocket } from 'node:dgram';
import { connect, createServer as createTcpServer, type AddressInfo } from 'node:net';
import { decodeEnvelope, ENVELOPE_SIZE, encodeEnvelope, encodeResolutionRequest } from '../src/native/codec.js';
import { simulate, ZIPF_CASES, zipfTable } from './zipf.js';
import { bulkLine, recordBody, TEMPLATE_ITEMS, newRecordPuts } from './records.js';
import { pgBulk, pgCold, pgHot, pgNotFound, type PgOptions, pgScale, pgVisibility, pgWrites } from './pg.js';
import { checkWrk, CLIENT_CORE, pin, SERVER_CORE, wrkLoad } from './wrk.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/bin.js');
const BARE = join(ROOT, 'dist/bench/bare.js');
const ADMIN = 'bench-admin-secret';
const AUTH = { authorization: `Bearer ${ADMIN}` };

interface Options {
  runs: number;
  seconds: number;
  connections: number;
  /** `--smoke`: the result is labelled a smoke run (checks the script works; not a measurement). */
  smoke?: boolean;
}

interface Side {
  runs: LoadResult[];
  rps: number;
  cpuUsPerReq: number;
  p99: number;
}

interface Ratio {
  name: string;
  value: number;
  /** e.g. ">= 0.9"; undefined when the issue sets no target. */
  target?: string;
}

interface Outcome {
  sides: Record<string, Side>;
  ratios: Ratio[];
  notes: Record<string, unknown>;
}

function summarise(runs: LoadResult[]): Side {
  return { runs, rps: median(runs.map((r) => r.rps)), cpuUsPerReq: median(runs.map((r) => r.cpuUsPerReq)), p99: median(runs.map((r) => r.p99)) };
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'idnode-bench-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts an idnode child on a fresh database in `dir`, with the given config. */
async function startIdnode(dir: string, config: Record<string, unknown>): Promise<Server> {
  const file = join(dir, 'config.json');
  // BENCH_NODE_CONFIG (JSON) is merged into every node's config: for trying a setting (e.g. {"sqlite":{"mmapBytes":0}}).
  const extra = JSON.parse(process.env.BENCH_NODE_CONFIG ?? '{}') as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ db: join(dir, 'idnode.db'), listen: { port: 0 }, logLevel: 'warn', ...config, ...extra }));
  return startServer([CLI, 'serve', '--config', file], { IDNODE_ADMIN_TOKEN: ADMIN }, dir);
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

/**
 * Alternates bare and idnode runs (after a short warm-up of each) and checks that every
 * answer was 2xx. `servers` maps a label to a server and its load options.
 */
async function alternate(
  servers: Record<string, { server: Server; paths: string[]; opts: LoadOptions }>,
  runs: number,
  allow404 = false,
): Promise<Record<string, Side>> {
  const results: Record<string, LoadResult[]> = {};
  for (const [label, s] of Object.entries(servers)) {
    results[label] = [];
    await load(s.server, s.paths, { ...s.opts, seconds: 2 });
  }
  for (let i = 0; i < runs; i++)
    for (const [label, s] of Object.entries(servers)) {
      const r = await load(s.server, s.paths, s.opts);
      if ((r.non2xx > 0 && !allow404) || r.errors > 0) throw new Error(`${label} run ${i}: ${r.non2xx} non-2xx, ${r.errors} errors`);
      results[label]!.push(r);
    }
  return Object.fromEntries(Object.entries(results).map(([k, v]) => [k, summarise(v)]));
}

/** Mean size of the answers to GET `paths` (which also fills idnode's cache). */
async function meanAnswerBytes(url: string, paths: string[], headers: Record<string, string> = {}): Promise<number> {
  let bytes = 0;
  for (const p of paths) bytes += (await (await fetch(url + p, { headers })).arrayBuffer()).byteLength;
  return Math.round(bytes / paths.length);
}

/** Cache hits: random keys over the seeded identifiers, every answer already in the LRU. */
async function hot(o: Options): Promise<Outcome> {
  return withDir(async (dir) => {
    const node = await startIdnode(dir, { seed: true });
    try {
      const paths: string[] = [];
      for (const prefix of ['88.100.1', '88.100.2', '88.100.3'])
        for (const h of (await call(node.url, 'GET', `/api/handles?prefix=${prefix}&pageSize=10000`)).handles as string[]) paths.push(`/api/handles/${h}`);
      const bodyBytes = await meanAnswerBytes(node.url, paths);
      const bare = await startServer([BARE], { BARE_BODY_BYTES: String(bodyBytes) });
      try {
        const opts = { seconds: o.seconds, connections: o.connections };
        const sides = await alternate({ bare: { server: bare, paths, opts }, idnode: { server: node, paths, opts } }, o.runs);
        return {
          sides,
          ratios: [
            { name: 'throughput idnode/bare', value: sides.idnode!.rps / sides.bare!.rps, target: '>= 0.90' },
            { name: 'CPU per request idnode/bare', value: sides.idnode!.cpuUsPerReq / sides.bare!.cpuUsPerReq, target: '<= 1.20' },
          ],
          notes: { keys: paths.length, bodyBytes },
        };
      } finally {
        await bare.stop();
      }
    } finally {
      await node.stop();
    }
  });
}

/**
 * Lineage: a tree of branching 6 and depth 5 (9,331 identifiers) built from aggregation
 * events; queries of the whole tree from its root (down) and of a random leaf's ancestry (up).
 */
async function lineageScenario(o: Options): Promise<Outcome> {
  return withDir(async (dir) => {
    const node = await startIdnode(dir, {});
    try {
      await call(node.url, 'POST', '/api/prefixes', { prefix: '88.100.9', owner: { name: 'Bench Works' } });
      const BRANCH = 6;
      const DEPTH = 5;
      let level = ['88.100.9/ROOT'];
      let count = 1;
      const leaves: string[] = [];
      for (let d = 1; d <= DEPTH; d++) {
        const next: string[] = [];
        for (const parent of level) {
          const children = Array.from({ length: BRANCH }, (_, i) => `${parent.replace('88.100.9/', '88.100.9/')}.${i}`);
          await call(node.url, 'POST', '/api/events', { type: 'aggregation', action: 'ADD', parent, children, eventTime: '2026-01-01T00:00:00Z' });
          next.push(...children);
        }
        count += next.length;
        level = next;
      }
      leaves.push(...level);
      const treePath = `/api/lineage/88.100.9/ROOT?direction=down&depth=${DEPTH}`;
      const tree = await call(node.url, 'GET', treePath);
      if (tree.nodes.length !== count || tree.truncated) throw new Error(`tree has ${tree.nodes.length} nodes, expected ${count}`);
      const leafPaths = leaves.map((l) => `/api/lineage/${l}?direction=up&depth=${DEPTH}`);
      const treeBytes = await meanAnswerBytes(node.url, [treePath], AUTH);
      const leafBytes = await meanAnswerBytes(node.url, leafPaths.slice(0, 200), AUTH);
      const bareTree = await startServer([BARE], { BARE_BODY_BYTES: String(treeBytes) });
      const bareLeaf = await startServer([BARE], { BARE_BODY_BYTES: String(leafBytes) });
      try {
        const treeOpts = { seconds: o.seconds, connections: 4, headers: AUTH };
        const leafOpts = { seconds: o.seconds, connections: o.connections, headers: AUTH };
        const sides = await alternate(
          {
            'bare (tree-sized body)': { server: bareTree, paths: [treePath], opts: treeOpts },
            'idnode whole tree, down': { server: node, paths: [treePath], opts: treeOpts },
            'bare (leaf-sized body)': { server: bareLeaf, paths: leafPaths, opts: leafOpts },
            'idnode leaf ancestry, up': { server: node, paths: leafPaths, opts: leafOpts },
          },
          o.runs,
        );
        return {
          sides,
          ratios: [
            { name: 'whole tree: throughput idnode/bare', value: sides['idnode whole tree, down']!.rps / sides['bare (tree-sized body)']!.rps },
            { name: 'leaf ancestry: throughput idnode/bare', value: sides['idnode leaf ancestry, up']!.rps / sides['bare (leaf-sized body)']!.rps },
          ],
          notes: { treeNodes: count, treeEdges: tree.edges.length, treeBodyBytes: treeBytes, leafBodyBytes: leafBytes },
        };
      } finally {
        await bareTree.stop();
        await bareLeaf.stop();
      }
    } finally {
      await node.stop();
    }
  });
}

/** Registration over HTTP (one PUT per new identifier), history and audit on vs off. */
async function register(o: Options): Promise<Outcome> {
  return withDir(async (dirOn) =>
    withDir(async (dirOff) => {
      const on = await startIdnode(dirOn, {});
      const off = await startIdnode(dirOff, { history: false });
      const bare = await startServer([BARE], { BARE_BODY_BYTES: '50' });
      try {
        for (const n of [on, off]) await call(n.url, 'POST', '/api/prefixes', { prefix: '88.100.9', owner: { name: 'Bench Works' } });
        const opts: LoadOptions = {
          seconds: o.seconds,
          connections: o.connections,
          method: 'PUT',
          headers: { ...AUTH, 'content-type': 'application/json' },
          next: newRecordPuts(),
        };
        const sides = await alternate(
          {
            bare: { server: bare, paths: [], opts },
            'idnode, history on': { server: on, paths: [], opts },
            'idnode, history off': { server: off, paths: [], opts },
          },
          o.runs,
        );
        const verdict = await call(on.url, 'GET', '/api/audit/verify');
        if (verdict.ok !== true) throw new Error(`audit chain broken after the run: ${JSON.stringify(verdict)}`);
        return {
          sides,
          ratios: [
            { name: 'registrations/s history on / off', value: sides['idnode, history on']!.rps / sides['idnode, history off']!.rps },
            { name: 'CPU per registration on / off', value: sides['idnode, history on']!.cpuUsPerReq / sides['idnode, history off']!.cpuUsPerReq },
            { name: 'throughput history on / bare', value: sides['idnode, history on']!.rps / sides.bare!.rps },
          ],
          notes: { auditEntriesVerified: verdict.checked, recordBodyBytes: recordBody(1).length },
        };
      } finally {
        await bare.stop();
        await on.stop();
        await off.stop();
      }
    }),
  );
}

/**
 * Forwarded resolution: an upstream idnode U (homes 88.200, 20,000 records) and two
 * secondary nodes that forward to it: "warm" (cache on, every key already cached: repeated
 * keys) and "cold" (cache off, so every request is forwarded: what a never-seen key costs).
 */
async function forwarded(o: Options): Promise<Outcome> {
  return withDir(async (dir) => {
    const KEYS = 20_000;
    const seedDir = join(dir, 'seed');
    mkdirSync(seedDir);
    writeFileSync(join(seedDir, 'prefixes.json'), '[]');
    const lines: string[] = [];
    for (let i = 1; i <= KEYS; i++) {
      const serial = `PUMP-2026-${String(i).padStart(8, '0')}`;
      lines.push(JSON.stringify({ handle: `88.200/${serial}`, values: JSON.parse(recordBody(i)).values.slice(0, 6) }));
    }
    writeFileSync(join(seedDir, 'records.ndjson'), `${lines.join('\n')}\n`);
    const udir = join(dir, 'u');
    const wdir = join(dir, 'w');
    const cdir = join(dir, 'c');
    for (const d of [udir, wdir, cdir]) mkdirSync(d);
    const up = await startIdnode(udir, { homed: ['88.200'], seed: true, seedDir });
    const warm = await startIdnode(wdir, { homed: ['88.100'], upstream: { url: up.url } });
    const cold = await startIdnode(cdir, { homed: ['88.100'], upstream: { url: up.url }, cache: { maxBytes: 0 } });
    try {
      const paths = Array.from({ length: KEYS }, (_, i) => `/api/handles/88.200/PUMP-2026-${String(i + 1).padStart(8, '0')}`);
      const bodyBytes = await meanAnswerBytes(warm.url, paths);
      const bare = await startServer([BARE], { BARE_BODY_BYTES: String(bodyBytes) });
      try {
        const opts = { seconds: o.seconds, connections: o.connections };
        const upCpu0 = up.cpuMs();
        const sides = await alternate(
          {
            bare: { server: bare, paths, opts },
            'idnode warm (cached)': { server: warm, paths, opts },
            'idnode cold (forwarded)': { server: cold, paths, opts },
          },
          o.runs,
        );
        const coldRequests = sides['idnode cold (forwarded)']!.runs.reduce((n, r) => n + r.requests, 0);
        return {
          sides,
          ratios: [
            { name: 'warm throughput / bare', value: sides['idnode warm (cached)']!.rps / sides.bare!.rps, target: '>= 0.90' },
            { name: 'warm CPU per request / bare', value: sides['idnode warm (cached)']!.cpuUsPerReq / sides.bare!.cpuUsPerReq },
            { name: 'cold throughput / bare', value: sides['idnode cold (forwarded)']!.rps / sides.bare!.rps, target: '>= 0.40' },
            { name: 'cold CPU per request (forwarding node) / bare', value: sides['idnode cold (forwarded)']!.cpuUsPerReq / sides.bare!.cpuUsPerReq },
          ],
          notes: { keys: KEYS, bodyBytes, upstreamCpuUsPerColdRequest: Math.round(((up.cpuMs() - upCpu0) * 1000) / coldRequests) },
        };
      } finally {
        await bare.stop();
      }
    } finally {
      await Promise.all([up.stop(), warm.stop(), cold.stop()]);
    }
  });
}

/** Seeded identifiers (public answers cached by the first GET of each). */
async function seededKeys(url: string): Promise<string[]> {
  const paths: string[] = [];
  for (const prefix of ['88.100.1', '88.100.2', '88.100.3'])
    for (const h of (await call(url, 'GET', `/api/handles?prefix=${prefix}&pageSize=10000`)).handles as string[]) paths.push(`/api/handles/${h}`);
  return paths;
}

/** Not-found flood: every request names an identifier nobody registered (a store lookup and a short-lived 404 entry each). */
async function notFound(o: Options): Promise<Outcome> {
  return withDir(async (dir) => {
    const node = await startIdnode(dir, { seed: true });
    try {
      let n = 0;
      const next = (req: { path: string }) => {
        req.path = `/api/handles/88.100.1/NOPE-${(n++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
      };
      const sample = await fetch(`${node.url}/api/handles/88.100.1/NOPE-sample`);
      const bodyBytes = (await sample.arrayBuffer()).byteLength;
      const bare = await startServer([BARE], { BARE_BODY_BYTES: String(bodyBytes) });
      try {
        const opts = { seconds: o.seconds, connections: o.connections, next };
        const sides = await alternate({ bare: { server: bare, paths: [], opts }, idnode: { server: node, paths: [], opts } }, o.runs, true);
        return {
          sides,
          ratios: [
            { name: 'throughput idnode/bare', value: sides.idnode!.rps / sides.bare!.rps },
            { name: 'CPU per request idnode/bare', value: sides.idnode!.cpuUsPerReq / sides.bare!.cpuUsPerReq, target: '<= 1.60' },
          ],
          notes: { bodyBytes },
        };
      } finally {
        await bare.stop();
      }
    } finally {
      await node.stop();
    }
  });
}

/** Zipf (s = 1) over the seeded identifiers, 5 % writes (PUT ?index= of one value) invalidating cached answers. */
async function mixed(o: Options): Promise<Outcome> {
  return withDir(async (dir) => {
    const node = await startIdnode(dir, { seed: true });
    try {
      const paths = await seededKeys(node.url);
      const bodyBytes = await meanAnswerBytes(node.url, paths);
      const weights = paths.map((_, i) => 1 / (i + 1));
      const total = weights.reduce((a, b) => a + b, 0);
      const cdf: number[] = [];
      let acc = 0;
      for (const w of weights) cdf.push((acc += w / total));
      const zipf = () => {
        const u = Math.random();
        let lo = 0;
        let hi = cdf.length - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (cdf[mid]! < u) lo = mid + 1;
          else hi = mid;
        }
        return paths[lo]!;
      };
      let writes = 0;
      const next = (req: { path: string; method?: string; headers?: Record<string, string>; body?: string | Buffer }) => {
        const path = zipf();
        if (Math.random() < 0.05) {
          req.method = 'PUT';
          req.path = `${path}?index=30`;
          req.headers = { ...AUTH, 'content-type': 'application/json' };
          req.body = JSON.stringify([{ index: 30, type: 'lastSeen', data: `scan ${writes++}` }]);
        } else {
          req.method = 'GET';
          req.path = path;
          req.headers = {};
          delete req.body;
        }
      };
      const bare = await startServer([BARE], { BARE_BODY_BYTES: String(bodyBytes) });
      try {
        const opts = { seconds: o.seconds, connections: o.connections, next };
        const sides = await alternate({ bare: { server: bare, paths, opts }, idnode: { server: node, paths, opts } }, o.runs);
        return {
          sides,
          ratios: [
            { name: 'throughput idnode/bare', value: sides.idnode!.rps / sides.bare!.rps },
            { name: 'CPU per request idnode/bare', value: sides.idnode!.cpuUsPerReq / sides.bare!.cpuUsPerReq },
          ],
          notes: { keys: paths.length, bodyBytes, writeShare: 0.05, zipfS: 1 },
        };
      } finally {
        await bare.stop();
      }
    } finally {
      await node.stop();
    }
  });
}

const SCHEMA_FILES = readdirSync(join(ROOT, 'schema'))
  .filter((f) => /^\d{3}_.*\.sql$/.test(f))
  .sort();

/**
 * A node's database with `n` records under 88.100.1, built once per size and schema version
 * and reused (bench/results/data-v<schema>-<n>.db, git-ignored): the store opens the file (its
 * migrations make the schema) and takes the rows as an escrow restore does, with the answer
 * metadata the write path stores (no versions or audit: this is a fixture for reads, not a
 * registration measurement).
 */
async function dataset(n: number): Promise<string> {
  const path = join(ROOT, 'bench/results', `data-v${SCHEMA_FILES.length}-${n}.db`);
  if (existsSync(path)) return path;
  process.stdout.write(`building ${path} (once)\n`);
  const tmp = `${path}.tmp`;
  for (const suffix of ['', '-wal', '-shm']) rmSync(tmp + suffix, { force: true });
  const store = openStore(tmp, { history: false });
  const at = '2026-11-25T00:00:00Z';
  await store.insertRows('prefixes', [
    {
      prefix_key: '88.100.1',
      prefix: '88.100.1',
      parent_key: '88.100',
      owner_json: '{"name":"Bench"}',
      site: null,
      status: 'active',
      created_at: at,
      updated_at: at,
    },
  ]);
  for (let from = 0; from < n; from += 10_000) {
    const rows: Array<Record<string, unknown>> = [];
    for (let i = from; i < Math.min(n, from + 10_000); i++) {
      const handle = `88.100.1/PUMP-2026-${String(i).padStart(9, '0')}`;
      const values = (JSON.parse(recordBody(i)).values as object[]).slice(0, 6).map((v) => ({ ...v, ttl: 86400, timestamp: at }));
      const r = renderRecord(values as HandleValue[]);
      rows.push({
        handle_key: handle.toLowerCase(),
        handle,
        prefix_key: '88.100.1',
        values_json: r.valuesJson,
        public_json: null,
        max_age: r.maxAge,
        expires_at: r.expiresAt,
        etag: answerEtag(handle, r),
        version: 1,
        updated_at: at,
      });
    }
    await store.insertRows('records', rows);
    if (from % 1_000_000 === 0 && from > 0) process.stdout.write(`  ${from} records\n`);
  }
  await store.close();
  renameSync(tmp, path);
  for (const suffix of ['-wal', '-shm']) rmSync(tmp + suffix, { force: true });
  return path;
}

/** A node on a copy of the `records`-record fixture, in its own folder under `dir`. */
async function fixtureNode(dir: string, records: number, cacheMaxBytes: number, config: Record<string, unknown> = {}): Promise<Server> {
  const data = await dataset(records);
  const home = join(dir, `n${records}`);
  mkdirSync(home);
  const db = join(home, 'idnode.db');
  copyFileSync(data, db);
  // The node reads the copy: drop the original's pages from the OS cache (a 10M fixture and its
  // copy do not both fit in this machine's memory; GNU dd's nocache flag does posix_fadvise).
  execFileSync('dd', [`if=${data}`, 'iflag=nocache', 'count=0'], { stdio: 'ignore' });
  // And read the copy once, so the runs measure lookups in a file the OS holds (the steady state
  // of a node that has run a while), not first reads from the disk: 10M's copy is not left in the
  // OS cache by the copy itself, and a run touches only part of it.
  execFileSync('dd', [`if=${db}`, 'of=/dev/null', 'bs=4M'], { stdio: 'ignore' });
  const node = await startIdnode(home, { db, cache: { maxBytes: cacheMaxBytes }, ...config });
  // The key filter fills after the node listens (10M keys: seconds of reads between requests):
  // the runs start once /readyz says it is filled, or it could not be.
  for (const until = Date.now() + 600_000; ;) {
    const ready = (await (await fetch(`${node.url}/readyz`)).json()) as { cache?: { keyFilter?: string } };
    if (ready.cache?.keyFilter !== 'building') break;
    if (Date.now() > until) throw new Error(`${home}: the key filter was still filling after 600 s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return node;
}

/** Uniform random keys over a fixture of `records` identifiers. */
function fixtureKeys(records: number): (req: { path: string }) => void {
  return (req) => {
    req.path = `/api/handles/88.100.1/PUMP-2026-${String(Math.floor(Math.random() * records)).padStart(9, '0')}`;
  };
}

/** 200 random paths over a fixture (for the mean answer size). */
function samplePaths(records: number): string[] {
  const next = fixtureKeys(records);
  return Array.from({ length: 200 }, () => {
    const r = { path: '' };
    next(r);
    return r.path;
  });
}

const COLD_CACHE_BYTES = 8 * 1024 * 1024;

/**
 * Cold reads: uniform random keys over `--records` identifiers with a cache far smaller than
 * the working set. A second baseline, bare + SQLite, answers the same fixed body after the
 * same point query on its own copy of the fixture: the floor for a server that reads its
 * store on every miss.
 */
async function cold(o: Options & { records: number }): Promise<Outcome> {
  return withDir(async (dir) => {
    const node = await fixtureNode(dir, o.records, COLD_CACHE_BYTES);
    try {
      const next = fixtureKeys(o.records);
      const bodyBytes = await meanAnswerBytes(node.url, samplePaths(o.records));
      const bare = await startServer([BARE], { BARE_BODY_BYTES: String(bodyBytes) });
      const bareDb = join(dir, 'bare.db');
      copyFileSync(await dataset(o.records), bareDb);
      const bareSql = await startServer([BARE], { BARE_BODY_BYTES: String(bodyBytes), BARE_DB: bareDb });
      try {
        const opts = { seconds: o.seconds, connections: o.connections, next };
        const sides = await alternate(
          { bare: { server: bare, paths: [], opts }, 'bare + SQLite lookup': { server: bareSql, paths: [], opts }, idnode: { server: node, paths: [], opts } },
          o.runs,
        );
        const ready = await call(node.url, 'GET', '/readyz');
        return {
          sides,
          ratios: [
            { name: 'throughput idnode/bare', value: sides.idnode!.rps / sides.bare!.rps, target: '>= 0.75' },
            { name: 'CPU per request idnode/bare', value: sides.idnode!.cpuUsPerReq / sides.bare!.cpuUsPerReq, target: '<= 1.60' },
            { name: 'throughput (bare + SQLite lookup)/bare', value: sides['bare + SQLite lookup']!.rps / sides.bare!.rps },
            { name: 'CPU per request (bare + SQLite lookup)/bare', value: sides['bare + SQLite lookup']!.cpuUsPerReq / sides.bare!.cpuUsPerReq },
            { name: 'CPU per request idnode/(bare + SQLite lookup)', value: sides.idnode!.cpuUsPerReq / sides['bare + SQLite lookup']!.cpuUsPerReq },
          ],
          notes: {
            records: o.records,
            bodyBytes,
            cacheMaxBytes: COLD_CACHE_BYTES,
            cacheEntriesAtEnd: ready.cache.entries,
            cacheHits: ready.cache.hits,
            cacheMisses: ready.cache.misses,
          },
        };
      } finally {
        await Promise.all([bare.stop(), bareSql.stop()]);
      }
    } finally {
      await node.stop();
    }
  });
}

/**
 * The cold scenario at --records and at ten times as many (default 1M and 10M), both nodes
 * and the bare server alternating in one run: does a 10x larger store cost throughput?
 */
async function scale(o: Options & { records: number }): Promise<Outcome> {
  return withDir(async (dir) => {
    const sizes = [o.records, o.records * 10];
    // Fixtures first (building one blocks this process for minutes), then one node at a time.
    for (const n of sizes) await dataset(n);
    const nodes: Server[] = [];
    // History off: with it, a node re-bases the fixture's rows into audit write sets at start (10M
    // rows take longer than a start may); lookups read neither versions nor the log.
    for (const n of sizes) nodes.push(await fixtureNode(dir, n, COLD_CACHE_BYTES, { history: false }));
    const label = (n: number) => `idnode ${n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`}`;
    try {
      const bodyBytes = await meanAnswerBytes(nodes[0]!.url, samplePaths(sizes[0]!));
      const bare = await startServer([BARE], { BARE_BODY_BYTES: String(bodyBytes) });
      try {
        const servers: Record<string, { server: Server; paths: string[]; opts: LoadOptions }> = {
          bare: { server: bare, paths: [], opts: { seconds: o.seconds, connections: o.connections, next: fixtureKeys(sizes[0]!) } },
        };
        sizes.forEach(
          (n, i) => (servers[label(n)] = { server: nodes[i]!, paths: [], opts: { seconds: o.seconds, connections: o.connections, next: fixtureKeys(n) } }),
        );
        const sides = await alternate(servers, o.runs);
        const [small, big] = sizes.map((n) => sides[label(n)]!);
        return {
          sides,
          ratios: [
            { name: `throughput ${label(sizes[1]!)} / ${label(sizes[0]!)}`, value: big!.rps / small!.rps, target: '>= 0.90' },
            { name: `CPU per request ${label(sizes[1]!)} / ${label(sizes[0]!)}`, value: big!.cpuUsPerReq / small!.cpuUsPerReq },
            { name: `throughput ${label(sizes[1]!)} / bare`, value: big!.rps / sides.bare!.rps },
            { name: `CPU per request ${label(sizes[1]!)} / bare`, value: big!.cpuUsPerReq / sides.bare!.cpuUsPerReq },
          ],
          notes: {
            records: sizes,
            bodyBytes,
            cacheMaxBytes: COLD_CACHE_BYTES,
            fixtureBytes: await Promise.all(sizes.map(async (n) => statSync(await dataset(n)).size)),
          },
        };
      } finally {
        await bare.stop();
      }
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
    }
  });
}

/** Resident set size of a process, bytes, from /proc: VmRSS, or one of its parts (RssAnon, RssFile). */
function rssOf(server: Server, field: 'VmRSS' | 'RssAnon' | 'RssFile' = 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${server.child.pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

/**
 * Memory: a node on the --records fixture with a cache large enough for all of them; every
 * identifier is resolved twice (admission stores an answer on its second miss, so the cache
 * then holds --records entries), then the node's RSS is
 * compared with 200 MiB + 1 KiB per entry. The bare server's RSS is the baseline. SQLite's
 * mmap is off here: mapped database pages are the OS page cache (shared, dropped under
 * pressure) but count in RSS, and would hide what the cache itself costs.
 */
async function memory(o: Options & { records: number }): Promise<Outcome> {
  return withDir(async (dir) => {
    const node = await fixtureNode(dir, o.records, 8 * 1024 ** 3, { sqlite: { mmapBytes: 0 } });
    const bare = await startServer([BARE], { BARE_BODY_BYTES: '868' });
    try {
      let i = 0;
      const next = (req: { path: string }) => {
        req.path = `/api/handles/88.100.1/PUMP-2026-${String(i++ % o.records).padStart(9, '0')}`;
      };
      const rssStart = rssOf(node);
      const fill = await load(node, [], { seconds: 0, amount: 2 * o.records, connections: o.connections, next });
      const ready = await call(node.url, 'GET', '/readyz');
      if (ready.cache.entries !== o.records) throw new Error(`cache holds ${ready.cache.entries} entries, expected ${o.records}`);
      // A few seconds of hits over the full cache, then read RSS (what a node serving this cache holds).
      const hits = await load(node, [], { seconds: Math.min(o.seconds, 5), connections: o.connections, next: fixtureKeys(o.records) });
      const bareRun = await load(bare, [], { seconds: Math.min(o.seconds, 5), connections: o.connections, next: fixtureKeys(o.records) });
      await new Promise((r) => setTimeout(r, 2000));
      const rss = rssOf(node);
      const anon = rssOf(node, 'RssAnon');
      const file = rssOf(node, 'RssFile');
      // And once the node has been idle a while (V8 shrinks its heap when allocation stops).
      await new Promise((r) => setTimeout(r, 30_000));
      const rssIdle = rssOf(node);
      const target = 200 * 1024 ** 2 + 1024 * ready.cache.entries;
      return {
        sides: { 'idnode fill (each key twice)': summarise([fill]), 'idnode hits on the full cache': summarise([hits]), bare: summarise([bareRun]) },
        ratios: [{ name: 'idnode RSS / (200 MiB + 1 KiB x entries)', value: rss / target, target: '<= 1.00' }],
        notes: {
          entries: ready.cache.entries,
          cacheAccountedBytes: ready.cache.bytes,
          rssStartMiB: Math.round(rssStart / 1024 ** 2),
          rssMiB: Math.round(rss / 1024 ** 2),
          targetMiB: Math.round(target / 1024 ** 2),
          rssBytesPerEntryAboveStart: Math.round((rss - rssStart) / ready.cache.entries),
          rssAnonMiB: Math.round(anon / 1024 ** 2),
          rssFileMiB: Math.round(file / 1024 ** 2),
          rssAfter30sIdleMiB: Math.round(rssIdle / 1024 ** 2),
          bareRssMiB: Math.round(rssOf(bare) / 1024 ** 2),
        },
      };
    } finally {
      await Promise.all([node.stop(), bare.stop()]);
    }
  });
}

/** POSTs the file as NDJSON and reads the whole answer; returns the summary and seconds. */
async function upload(url: string, file: string): Promise<{ summary: { ok: number; failed: number; total: number }; seconds: number }> {
  const t0 = performance.now();
  const res = await fetch(`${url}/api/prefixes/88.100.9/handles?overwrite=false`, {
    method: 'POST',
    headers: { ...AUTH, 'content-type': 'application/x-ndjson' },
    body: createReadStream(file),
    duplex: 'half',
  });
  let tail = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) tail = (tail + Buffer.from(chunk).toString('utf8')).slice(-400);
  const seconds = (performance.now() - t0) / 1000;
  return { summary: JSON.parse(tail.trim().split('\n').at(-1)!), seconds };
}

/** The ceiling: the same rows inserted with better-sqlite3 alone, in one process, same durability. */
async function rawInsertRate(file: string, dbPath: string): Promise<number> {
  const db = new Database(dbPath);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(`CREATE TABLE records (id INTEGER PRIMARY KEY, handle_key TEXT NOT NULL UNIQUE, handle TEXT NOT NULL, prefix_key TEXT NOT NULL, values_json TEXT NOT NULL);
           CREATE INDEX records_by_prefix ON records (prefix_key, handle_key);`);
  const insert = db.prepare('INSERT INTO records (handle_key, handle, prefix_key, values_json) VALUES (?, ?, ?, ?)');
  const chunk = db.transaction((rows: string[]) => {
    for (const line of rows) {
      const r = JSON.parse(line) as { handle: string; values: unknown };
      insert.run(r.handle.toLowerCase(), r.handle, '88.100.9', JSON.stringify(r.values));
    }
  });
  const t0 = performance.now();
  let n = 0;
  let rows: string[] = [];
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    if (line === '') continue;
    rows.push(line);
    n++;
    if (rows.length === 1000) {
      chunk(rows);
      rows = [];
    }
  }
  chunk(rows);
  const rate = n / ((performance.now() - t0) / 1000);
  db.close();
  return rate;
}

/**
 * Bulk registration: `--records` (default 1,000,000) generated records with a template of 8
 * items, streamed over HTTP NDJSON into a fresh node (history and audit on), median of
 * `--runs`; the bare baseline reads the same upload and answers a line per line; the
 * ceiling is better-sqlite3 inserting the same rows in one process.
 */
async function bulkScenario(o: Options & { records: number }): Promise<Outcome> {
  return withDir(async (dir) => {
    const file = join(dir, 'records.ndjson');
    const fd = openSync(file, 'w');
    for (let i = 1; i <= o.records; i += 10_000) {
      const lines: string[] = [];
      for (let j = i; j < Math.min(o.records + 1, i + 10_000); j++) lines.push(bulkLine(j));
      writeSync(fd, `${lines.join('\n')}\n`);
    }
    closeSync(fd);
    const bytes = statSync(file).size;
    const runs = { idnode: [] as LoadResult[], bare: [] as LoadResult[] };
    const bare = await startServer([BARE], { BARE_MODE: 'ndjson' });
    try {
      for (let r = 0; r < o.runs; r++) {
        const cpu0 = bare.cpuMs();
        const b = await upload(bare.url, file);
        const bareCpu = bare.cpuMs() - cpu0;
        runs.bare.push({
          requests: o.records,
          rps: o.records / b.seconds,
          p50: 0,
          p99: 0,
          non2xx: 0,
          errors: 0,
          cpuMs: bareCpu,
          cpuUsPerReq: (bareCpu * 1000) / o.records,
        });
        const ndir = join(dir, `run-${r}`);
        mkdirSync(ndir);
        const node = await startIdnode(ndir, {});
        try {
          await call(node.url, 'POST', '/api/prefixes', { prefix: '88.100.9', owner: { name: 'Bench Works' } });
          await call(node.url, 'PUT', '/api/templates/88.100.9/1', { items: TEMPLATE_ITEMS });
          const c0 = node.cpuMs();
          const res = await upload(node.url, file);
          const cpu = node.cpuMs() - c0;
          if (res.summary.ok !== o.records) throw new Error(`run ${r}: ${JSON.stringify(res.summary)}`);
          runs.idnode.push({
            requests: o.records,
            rps: o.records / res.seconds,
            p50: 0,
            p99: 0,
            non2xx: 0,
            errors: 0,
            cpuMs: cpu,
            cpuUsPerReq: (cpu * 1000) / o.records,
          });
          process.stdout.write(`run ${r + 1}: idnode ${Math.round(o.records / res.seconds)} records/s, bare ${Math.round(o.records / b.seconds)} lines/s\n`);
          if (r === o.runs - 1) {
            const verdict = await call(node.url, 'GET', '/api/audit/verify');
            if (verdict.ok !== true) throw new Error(`audit chain broken after the import: ${JSON.stringify(verdict)}`);
          }
        } finally {
          await node.stop();
          rmSync(ndir, { recursive: true, force: true });
        }
      }
    } finally {
      await bare.stop();
    }
    const ceilings: number[] = [];
    for (let r = 0; r < o.runs; r++) ceilings.push(await rawInsertRate(file, join(dir, `raw-${r}.db`)));
    const sides = { bare: summarise(runs.bare), 'idnode (records/s)': summarise(runs.idnode) };
    const ceiling = median(ceilings);
    return {
      sides,
      ratios: [
        { name: 'idnode records/s / raw better-sqlite3 ceiling', value: sides['idnode (records/s)'].rps / ceiling },
        { name: 'idnode records/s / 50,000 target', value: sides['idnode (records/s)'].rps / 50_000, target: '>= 1.00' },
        { name: 'idnode / bare (lines/s)', value: sides['idnode (records/s)'].rps / sides.bare.rps },
      ],
      notes: {
        records: o.records,
        fileBytes: bytes,
        rawBetterSqlite3RecordsPerSecond: Math.round(ceiling),
        ceilingRuns: ceilings.map(Math.round),
        chunkSize: 1000,
      },
    };
  });
}

/** A port free for TCP and UDP on 127.0.0.1 (native.port 0 means "off"). */
async function freeNativePort(): Promise<number> {
  for (;;) {
    const srv = createTcpServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    const udp = createSocket('udp4');
    const ok = await new Promise<boolean>((r) => {
      udp.once('error', () => r(false));
      udp.bind(port, '127.0.0.1', () => r(true));
    });
    await new Promise<void>((r) => srv.close(() => r()));
    if (ok) await new Promise<void>((r) => udp.close(() => r()));
    if (ok) return port;
  }
}

function p99Of(latencies: number[]): number {
  const s = latencies.sort((a, b) => a - b);
  return s.length === 0 ? NaN : Math.round(s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]! * 100) / 100;
}

/**
 * Native load: `window` resolution requests kept in flight (UDP: on one socket, a lost answer
 * is re-sent after 1 s and counted as an error; TCP: `connections` connections, `window /
 * connections` requests pipelined on each). Frames are encoded once; only the request id changes.
 */
async function nativeLoad(server: Server, port: number, transport: 'udp' | 'tcp', handles: string[], seconds: number, window: number): Promise<LoadResult> {
  const frames = handles.map((handle) => {
    const { envelope, message } = encodeResolutionRequest({ handle });
    return Buffer.concat([encodeEnvelope(envelope), message]);
  });
  const pick = (id: number) => {
    const f = Buffer.from(frames[Math.floor(Math.random() * frames.length)]!);
    f.writeInt32BE(id, 8);
    return f;
  };
  let requests = 0;
  let non2xx = 0;
  let errors = 0;
  const latencies: number[] = [];
  const sentAt = new Map<number, number>();
  let nextId = 1;
  let stopping = false;
  const cpu0 = server.cpuMs();
  const t0 = performance.now();
  const done = (msg: Buffer, id: number) => {
    const at = sentAt.get(id);
    if (at === undefined) return false;
    sentAt.delete(id);
    requests++;
    latencies.push(performance.now() - at);
    if (msg.readUInt32BE(4) !== 1) non2xx++;
    return true;
  };
  if (transport === 'udp') {
    const sock = createSocket('udp4');
    const send = () => {
      if (stopping) return;
      const id = nextId++;
      sentAt.set(id, performance.now());
      sock.send(pick(id), port, '127.0.0.1');
    };
    sock.on('message', (d) => {
      const env = decodeEnvelope(d);
      if (done(d.subarray(ENVELOPE_SIZE), env.requestId)) send();
    });
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    for (let i = 0; i < window; i++) send();
    const resend = setInterval(() => {
      const now = performance.now();
      for (const [id, at] of sentAt)
        if (now - at > 1000) {
          sentAt.delete(id);
          errors++;
          send();
        }
    }, 250);
    await new Promise((r) => setTimeout(r, seconds * 1000));
    stopping = true;
    clearInterval(resend);
    sock.close();
  } else {
    const perConn = Math.max(1, Math.floor(window / 32));
    const socks = await Promise.all(
      Array.from({ length: Math.min(32, window) }, () => {
        return new Promise<ReturnType<typeof connect>>((resolve) => {
          const c = connect(port, '127.0.0.1', () => resolve(c));
          c.setNoDelay(true);
          let buf: Buffer = Buffer.alloc(0);
          const send = () => {
            if (stopping) return;
            const id = nextId++;
            sentAt.set(id, performance.now());
            c.write(pick(id));
          };
          c.on('data', (chunk: Buffer) => {
            buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
            while (buf.length >= ENVELOPE_SIZE) {
              const len = buf.readInt32BE(16);
              if (buf.length < ENVELOPE_SIZE + len) break;
              const id = buf.readInt32BE(8);
              if (done(buf.subarray(ENVELOPE_SIZE, ENVELOPE_SIZE + len), id)) send();
              buf = buf.subarray(ENVELOPE_SIZE + len);
            }
          });
          c.on('error', () => errors++);
          c.once('connect', () => {
            for (let i = 0; i < perConn; i++) send();
          });
        });
      }),
    );
    await new Promise((r) => setTimeout(r, seconds * 1000));
    stopping = true;
    for (const c of socks) c.destroy();
  }
  const cpuMs = server.cpuMs() - cpu0;
  const elapsed = (performance.now() - t0) / 1000;
  return {
    requests,
    rps: requests / elapsed,
    p50: NaN,
    p99: p99Of(latencies),
    non2xx,
    errors,
    cpuMs,
    cpuUsPerReq: requests === 0 ? NaN : (cpuMs * 1000) / requests,
  };
}

/** Native resolution of cache hits over UDP and TCP against the HTTP hot path, same node, same keys. */
async function nativeScenario(o: Options): Promise<Outcome> {
  return withDir(async (dir) => {
    const port = await freeNativePort();
    const node = await startIdnode(dir, { seed: true, native: { port } });
    try {
      const handles: string[] = [];
      for (const prefix of ['88.100.1', '88.100.2', '88.100.3'])
        for (const h of (await call(node.url, 'GET', `/api/handles?prefix=${prefix}&pageSize=10000`)).handles as string[]) handles.push(h);
      const paths = handles.map((h) => `/api/handles/${h}`);
      const bodyBytes = await meanAnswerBytes(node.url, paths);
      const window = o.connections * 4;
      const runs: Record<string, LoadResult[]> = { http: [], udp: [], tcp: [] };
      await load(node, paths, { seconds: 2, connections: o.connections });
      await nativeLoad(node, port, 'udp', handles, 2, window);
      await nativeLoad(node, port, 'tcp', handles, 2, window);
      for (let i = 0; i < o.runs; i++) {
        runs.http!.push(await load(node, paths, { seconds: o.seconds, connections: o.connections }));
        runs.udp!.push(await nativeLoad(node, port, 'udp', handles, o.seconds, window));
        runs.tcp!.push(await nativeLoad(node, port, 'tcp', handles, o.seconds, window));
      }
      for (const [label, rs] of Object.entries(runs)) for (const r of rs) if (r.non2xx > 0) throw new Error(`${label}: ${r.non2xx} answers were not successes`);
      const sides = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, summarise(v)]));
      return {
        sides,
        ratios: [
          { name: 'throughput native UDP/HTTP', value: sides.udp!.rps / sides.http!.rps },
          { name: 'throughput native TCP/HTTP', value: sides.tcp!.rps / sides.http!.rps },
          { name: 'CPU per request native UDP/HTTP', value: sides.udp!.cpuUsPerReq / sides.http!.cpuUsPerReq },
          { name: 'CPU per request native TCP/HTTP', value: sides.tcp!.cpuUsPerReq / sides.http!.cpuUsPerReq },
        ],
        notes: { keys: handles.length, httpBodyBytes: bodyBytes, nativeInFlight: window, udpLost: runs.udp!.reduce((a, r) => a + r.errors, 0) },
      };
    } finally {
      await node.stop();
    }
  });
}

/**
 * The wrk scenarios: idnode and the bare server pinned to core 1, wrk (one thread) on core 0,
 * alternating runs after a warm-up of each; `args` go to bench/wrk/random.lua.
 */
async function wrkAlternate(o: Options, servers: Record<string, Server>, args: string[], allow404: boolean): Promise<Record<string, Side>> {
  checkWrk();
  for (const s of Object.values(servers)) pin(s);
  const results: Record<string, LoadResult[]> = {};
  for (const [label, s] of Object.entries(servers)) {
    results[label] = [];
    await wrkLoad(s, { seconds: 2, connections: o.connections, args });
  }
  for (let i = 0; i < o.runs; i++)
    for (const [label, s] of Object.entries(servers)) {
      const r = await wrkLoad(s, { seconds: o.seconds, connections: o.connections, args });
      if ((r.non2xx > 0 && !allow404) || r.errors > 0) throw new Error(`${label} run ${i}: ${r.non2xx} non-2xx, ${r.errors} socket errors`);
      results[label]!.push(r);
    }
  return Object.fromEntries(Object.entries(results).map(([k, v]) => [k, summarise(v)]));
}

function wrkNotes(o: Options, extra: Record<string, unknown>): Record<string, unknown> {
  const smoke =
    o.smoke === true
      ? { smoke: true, note: 'smoke run on a busy machine (other test suites on the same 2 cores): checks the script works; not a measurement' }
      : {};
  return { client: 'wrk -t1', serverCore: SERVER_CORE, clientCore: CLIENT_CORE, ...extra, ...smoke };
}

/** wrk: cache hits, random keys over the seeded identifiers (the hot scenario without autocannon's cost). */
async function wrkHot(o: Options): Promise<Outcome> {
  return withDir(async (dir) => {
    const node = await startIdnode(dir, { seed: true });
    try {
      const paths: string[] = [];
      for (const prefix of ['88.100.1', '88.100.2', '88.100.3'])
        for (const h of (await call(node.url, 'GET', `/api/handles?prefix=${prefix}&pageSize=10000`)).handles as string[]) paths.push(`/api/handles/${h}`);
      const bodyBytes = await meanAnswerBytes(node.url, paths);
      const file = join(dir, 'paths.txt');
      writeFileSync(file, `${paths.join('\n')}\n`);
      const bare = await startServer([BARE], { BARE_BODY_BYTES: String(bodyBytes) });
      try {
        const sides = await wrkAlternate(o, { bare, idnode: node }, ['paths', file], false);
        return {
          sides,
          ratios: [
            { name: 'throughput idnode/bare', value: sides.idnode!.rps / sides.bare!.rps, target: '>= 0.95' },
            { name: 'CPU per request idnode/bare', value: sides.idnode!.cpuUsPerReq / sides.bare!.cpuUsPerReq, target: '<= 1.10' },
          ],
          notes: wrkNotes(o, { keys: paths.length, bodyBytes }),
        };
      } finally {
        await bare.stop();
      }
    } finally {
      await node.stop();
    }
  });
}

/** wrk: a new unregistered identifier per request (the notfound scenario without autocannon's cost). */
async function wrkNotFound(o: Options): Promise<Outcome> {
  return withDir(async (dir) => {
    const node = await startIdnode(dir, { seed: true });
    try {
      const bodyBytes = (await (await fetch(`${node.url}/api/handles/88.100.1/NOPE-sample`)).arrayBuffer()).byteLength;
      const bare = await startServer([BARE], { BARE_BODY_BYTES: String(bodyBytes) });
      try {
        const sides = await wrkAlternate(o, { bare, idnode: node }, ['notfound', '88.100.1'], true);
        return {
          sides,
          ratios: [
            { name: 'throughput idnode/bare', value: sides.idnode!.rps / sides.bare!.rps },
            { name: 'CPU per request idnode/bare', value: sides.idnode!.cpuUsPerReq / sides.bare!.cpuUsPerReq, target: '<= 1.60' },
          ],
          notes: wrkNotes(o, { bodyBytes }),
        };
      } finally {
        await bare.stop();
      }
    } finally {
      await node.stop();
    }
  });
}

/** No server: Zipf traces through the real answer cache, with and without admission (hit ratios, not times). */
function zipfScenario(): Promise<Outcome> {
  const trace = { keys: 100_000, requests: 1_000_000, seed: 20261130 };
  const rows = simulate({ ...trace, cases: ZIPF_CASES });
  process.stdout.write(`${zipfTable(rows)}\n`);
  return Promise.resolve({
    sides: {},
    ratios: rows.map((r) => ({
      name: `hit ratio admission/LRU, s=${r.s}, cache ${r.cacheFraction * 100} %`,
      value: r.admissionHitRatio / r.lruHitRatio,
      target: '>= 1',
    })),
    notes: { ...trace, rows },
  });
}

const SCENARIOS: Record<string, { about: string; run: (o: Options & PgOptions & { records: number }) => Promise<Outcome> }> = {
  hot: { about: 'cache hits, random keys over the seeded identifiers', run: hot },
  lineage: { about: 'lineage queries over a depth-5 tree of 9,331 identifiers', run: lineageScenario },
  register: { about: 'registration over HTTP (PUT of new identifiers), history and audit on vs off', run: register },
  bulk: { about: 'bulk registration over HTTP NDJSON, template of 8 items, history and audit on', run: bulkScenario },
  cold: { about: 'cold reads: uniform keys over --records identifiers (default 1,000,000), 8 MiB cache', run: cold },
  scale: { about: 'the cold scenario at --records and at 10x --records (default 1M and 10M), in one run', run: scale },
  memory: { about: 'RSS with --records (default 1,000,000) cached entries vs 200 MiB + 1 KiB per entry', run: memory },
  notfound: { about: 'not-found flood: a new unregistered identifier per request', run: notFound },
  mixed: { about: 'Zipf reads over the seeded identifiers with 5 % writes', run: mixed },
  forwarded: { about: 'forwarded resolution to an upstream idnode: warm (cached) and cold (every request forwarded)', run: forwarded },
  native: { about: 'native Handle protocol (UDP, TCP) cache hits vs the HTTP hot path on the same node', run: nativeScenario },
  'wrk-hot': { about: 'wrk: cache hits, random keys over the seeded identifiers; server on core 1, wrk on core 0', run: wrkHot },
  'wrk-notfound': { about: 'wrk: a new unregistered identifier per request; server on core 1, wrk on core 0', run: wrkNotFound },
  zipf: { about: 'cache admission: hit ratios of Zipf traces through the answer cache, TinyLFU admission vs plain LRU', run: zipfScenario },
  'pg-hot': { about: 'PostgreSQL engine: cache hits, random keys over the seeded identifiers', run: pgHot },
  'pg-cold': { about: 'PostgreSQL engine: uniform keys over --pg-records identifiers (default 200,000, loaded by bulk), 8 MiB cache', run: pgCold },
  'pg-writes': { about: 'PostgreSQL engine: audited PUTs of new identifiers from 2 nodes x --connections clients, synchronous standby', run: pgWrites },
  'pg-bulk': { about: 'PostgreSQL engine: bulk NDJSON registration of --pg-records / 2 records (default 100,000), history and audit on', run: pgBulk },
  'pg-visibility': { about: 'PostgreSQL engine: PUT on node 1 until node 2 (reading from the standby) answers the new value', run: pgVisibility },
  'pg-notfound': {
    about: 'PostgreSQL engine: a new unregistered identifier per request, a node with its key filter and one without',
    run: pgNotFound,
  },
  'pg-scale': {
    about: 'PostgreSQL engine: pg-cold lookups on a --records and a 10x --records database (default 1M and 10M, built once, cached), in one run',
    run: pgScale,
  },
};

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      runs: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '10' },
      connections: { type: 'string', default: '32' },
      records: { type: 'string', default: '1000000' },
      'pg-records': { type: 'string', default: '200000' },
      smoke: { type: 'boolean', default: false },
    },
  });
  const opts = {
    runs: Number(values.runs),
    seconds: Number(values.seconds),
    connections: Number(values.connections),
    records: Number(values.records),
    pgRecords: Number(values['pg-records']),
    smoke: values.smoke,
  };
  const names = positionals.length > 0 ? positionals : Object.keys(SCENARIOS);
  for (const name of names) if (!(name in SCENARIOS)) throw new Error(`unknown scenario "${name}"; known: ${Object.keys(SCENARIOS).join(', ')}`);
  const info = runInfo();
  for (const name of names) {
    const s = SCENARIOS[name]!;
    process.stdout.write(`\n## ${name}: ${s.about} (${opts.runs} runs x ${opts.seconds}s)\n`);
    const r = await s.run(opts);
    for (const [label, x] of Object.entries(r.sides))
      process.stdout.write(
        `${label.padEnd(28)} ${x.rps.toFixed(0).padStart(8)} req/s  ${x.cpuUsPerReq.toFixed(1).padStart(8)} µs CPU/req  p99 ${x.p99} ms  runs: ${x.runs.map((y) => y.rps.toFixed(0)).join(', ')}\n`,
      );
    for (const ratio of r.ratios) process.stdout.write(`ratio  ${ratio.name}: ${ratio.value.toFixed(2)}x${ratio.target ? ` (target ${ratio.target})` : ''}\n`);
    process.stdout.write(`notes  ${JSON.stringify(r.notes)}\n`);
    const out = join(ROOT, 'bench/results', `${name}-${info.date.slice(0, 10)}-${info.commit}.json`);
    writeFileSync(out, `${JSON.stringify({ scenario: name, about: s.about, ...info, options: opts, ...r }, null, 2)}\n`);
    process.stdout.write(`${info.date} node ${info.node} commit ${info.commit}${info.dirty ? ' (dirty)' : ''} ${info.machine}\nwrote ${out}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
