/**
 * Overload reproduction: 1,000 keep-alive connections drive idnode at about 3x what it can
 * serve (uncached reads and writes), while a prober opens a fresh connection every 100 ms
 * for `GET /healthz` and another for a resolution, recording whether and how fast each new
 * connection is answered. Not part of `npm run bench`: it measures a failure mode, not speed.
 *
 *   node --import=@tapjs/typescript/import bench/overload.ts [--seconds 20] [--connections 1000] [--factor 3]
 *
 * The node runs from this checkout's sources (a child `idnode serve` on a fresh SQLite file
 * seeded with `--records` records by `idnode import`). Prints one JSON document.
 */
import autocannon from 'autocannon';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runInfo, startServer } from './lib.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NODE_ARGS = ['--import=@tapjs/typescript/import', join(ROOT, 'src/cli/bin.ts')];
const ADMIN = 'bench-admin-secret';
const PREFIX = '88.100.7';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    connections: { type: 'string', default: '1000' },
    factor: { type: 'string', default: '3' },
    records: { type: 'string', default: '200000' },
    /** Requests per second the node serves, when known (skips the capacity run). */
    capacity: { type: 'string' },
    /** Internal: run as the prober against this URL for `--seconds`, print the probes. */
    probe: { type: 'string' },
  },
});
const seconds = Number(args.seconds);
const connections = Number(args.connections);
const factor = Number(args.factor);
const records = Number(args.records);

interface Probe {
  kind: 'healthz' | 'resolve';
  /** Sent at, ms from the start of the overload run. */
  at: number;
  /** Time to the TCP connect, ms (undefined: never connected). */
  connectMs?: number;
  /** Time to the answer's status line, ms (undefined: never answered). */
  answerMs?: number;
  status?: number;
  retryAfter?: string;
  error?: string;
}

/** One request on a fresh connection (no agent, no keep-alive), bounded by `timeoutMs`. */
function probe(url: string, path: string, kind: Probe['kind'], at: number, timeoutMs: number): Promise<Probe> {
  const t0 = performance.now();
  const p: Probe = { kind, at };
  return new Promise((resolve) => {
    const req = request(`${url}${path}`, { agent: false, headers: { connection: 'close' } }, (res) => {
      p.answerMs = performance.now() - t0;
      p.status = res.statusCode;
      if (res.headers['retry-after'] !== undefined) p.retryAfter = String(res.headers['retry-after']);
      res.resume();
      res.on('end', () => resolve(p));
      res.on('error', () => resolve(p));
    });
    req.on('socket', (s) => s.once('connect', () => (p.connectMs = performance.now() - t0)));
    req.setTimeout(timeoutMs, () => {
      p.error = 'timeout';
      req.destroy();
    });
    req.on('error', (err) => {
      p.error ??= (err as NodeJS.ErrnoException).code ?? err.message;
      resolve(p);
    });
    req.end();
  });
}

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (f: number) => (s.length === 0 ? null : Math.round(s[Math.min(s.length - 1, Math.floor(f * s.length))]!));
  return { n: s.length, p50: q(0.5), p90: q(0.9), max: s.length === 0 ? null : Math.round(s.at(-1)!) };
}

function summarise(probes: Probe[], kind: Probe['kind']) {
  const mine = probes.filter((p) => p.kind === kind);
  const byStatus: Record<string, number> = {};
  for (const p of mine) {
    const k = p.status !== undefined ? String(p.status) : (p.error ?? 'none');
    byStatus[k] = (byStatus[k] ?? 0) + 1;
  }
  return {
    sent: mine.length,
    answered: mine.filter((p) => p.status !== undefined).length,
    byStatus,
    connectMs: stats(mine.flatMap((p) => (p.connectMs !== undefined ? [p.connectMs] : []))),
    answerMs: stats(mine.flatMap((p) => (p.answerMs !== undefined ? [p.answerMs] : []))),
    /** The longest stretch, ms, in which no probe sent got an answer within 1 s. */
    longestUnansweredMs: longestGap(mine),
    unavailableWithoutRetryAfter: mine.filter((p) => p.status === 503 && p.retryAfter === undefined).length,
  };
}

function longestGap(probes: Probe[]): number {
  let longest = 0;
  let start: number | undefined;
  for (const p of [...probes].sort((a, b) => a.at - b.at)) {
    const ok = p.answerMs !== undefined && p.answerMs < 1000;
    if (!ok) start ??= p.at;
    else if (start !== undefined) {
      longest = Math.max(longest, p.at - start);
      start = undefined;
    }
  }
  if (start !== undefined) longest = Math.max(longest, probes.at(-1)!.at - start);
  return Math.round(longest);
}

function mixedRequests(next: () => number) {
  // Three uncached reads (random records of many) to one write (a fresh identifier).
  const read = {
    method: 'GET',
    setupRequest: (req: { path: string }) => {
      req.path = `/api/handles/${PREFIX}/R-${Math.floor(Math.random() * records)}`;
      return req;
    },
  };
  const write = {
    method: 'PUT',
    setupRequest: (req: { path: string; headers?: Record<string, string>; body?: string }) => {
      const n = next();
      req.path = `/api/handles/${PREFIX}/W-${n}`;
      req.headers = { ...req.headers, authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
      req.body = JSON.stringify({ values: [{ index: 1, type: 'URL', data: `https://acme.example/w/${n}` }] });
      return req;
    },
  };
  return [read, read, read, write];
}

/**
 * The prober runs in its own process: in the load generator's process its timings would
 * include that process's own event-loop lag (autocannon at 1,000 connections is busy too).
 */
async function runProber(url: string): Promise<void> {
  const probes: Probe[] = [];
  const pending: Array<Promise<void>> = [];
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const at = performance.now() - t0;
      if (at > seconds * 1000) {
        clearInterval(timer);
        return resolve();
      }
      pending.push(probe(url, '/healthz', 'healthz', at, 15_000).then((p) => void probes.push(p)));
      pending.push(probe(url, `/api/handles/${PREFIX}/R-1`, 'resolve', at, 15_000).then((p) => void probes.push(p)));
    }, 100);
  });
  await Promise.all(pending);
  process.stdout.write(JSON.stringify(probes));
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'idnode-overload-'));
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ db: join(dir, 'idnode.db'), homed: ['88.100'], listen: { port: 0 }, logLevel: 'warn' }));
  const file = join(dir, 'records.ndjson');
  const lines: string[] = [];
  for (let i = 0; i < records; i++)
    lines.push(JSON.stringify({ handle: `${PREFIX}/R-${i}`, values: [{ index: 1, type: 'URL', data: `https://acme.example/r/${i}` }] }));
  writeFileSync(file, `${lines.join('\n')}\n`);
  execFileSync(process.execPath, [...NODE_ARGS, 'import', file, '--prefix', PREFIX, '--config', config], { stdio: 'ignore' });
  // OVERLOAD_NODE_ARGS: extra node flags for the server (e.g. --cpu-prof), to look inside a run.
  const extra = process.env.OVERLOAD_NODE_ARGS?.split(' ').filter((a) => a !== '') ?? [];
  const server = await startServer([...extra, ...NODE_ARGS, 'serve', '--config', config], { IDNODE_ADMIN_TOKEN: ADMIN }, ROOT);
  let written = 0;
  const next = () => written++;
  try {
    let capacity = args.capacity !== undefined ? Number(args.capacity) : 0;
    if (capacity === 0) {
      // What the node serves with enough connections to keep it busy.
      const r = await autocannon({ url: server.url, connections: 64, duration: 5, requests: mixedRequests(next) } as autocannon.Options);
      capacity = r.requests.average;
    }
    const rate = Math.round(capacity * factor);
    const prober = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--probe', server.url, '--seconds', String(seconds)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let probeOut = '';
    prober.stdout.on('data', (d) => (probeOut += d));
    const proberDone = new Promise((resolve) => prober.once('exit', resolve));
    const load = await autocannon({
      url: server.url,
      connections,
      overallRate: rate,
      duration: seconds,
      timeout: 30,
      requests: mixedRequests(next),
    } as autocannon.Options);
    await proberDone;
    const probes = JSON.parse(probeOut) as Probe[];
    const metrics = await fetch(`${server.url}/metrics`).then((r) => r.text());
    const shed = metrics.split('\n').filter((l) => !l.startsWith('#') && l.includes('503'));
    console.log(
      JSON.stringify(
        {
          ...runInfo(),
          connections,
          seconds,
          capacityRps: Math.round(capacity),
          offeredRps: rate,
          load: {
            requests: load.requests.total,
            rps: Math.round(load.requests.average),
            '2xx': load['2xx'],
            non2xx: load.non2xx,
            statusCodes: load.statusCodeStats,
            errors: load.errors,
            timeouts: load.timeouts,
            latencyMs: { p50: load.latency.p50, p90: load.latency.p90, p99: load.latency.p99, max: load.latency.max },
          },
          probes: { healthz: summarise(probes, 'healthz'), resolve: summarise(probes, 'resolve') },
          /** Each health probe: [sent at, answered after] in ms (null: not answered), to see when stalls happen. */
          healthzTimeline: probes.filter((p) => p.kind === 'healthz').map((p) => [Math.round(p.at), p.answerMs === undefined ? null : Math.round(p.answerMs)]),
          shedMetrics: shed,
        },
        null,
        2,
      ),
    );
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (args.probe !== undefined) await runProber(args.probe);
else await main();
