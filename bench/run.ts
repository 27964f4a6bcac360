/**
 * `npm run bench [-- <scenario>...] [--runs N] [--seconds S] [--connections C]`
 *
 * Every scenario runs idnode (the built CLI, as a child process) and a bare node:http server
 * answering a body of the same size, with the same autocannon client script, alternating
 * runs, and reports medians, the ratios, and each server's CPU time per request (read from
 * /proc before and after each run: the client shares the 2 cores, so throughput alone
 * mostly measures the client). Results go to bench/results/<scenario>-<date>.json.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { load, median, runInfo, startServer, type LoadResult, type Server } from './lib.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const BARE = join(ROOT, 'dist/bench/bare.js');
const ADMIN = 'bench-admin-secret';

interface Options {
  runs: number;
  seconds: number;
  connections: number;
}

interface Side {
  runs: LoadResult[];
  rps: number;
  cpuUsPerReq: number;
  p99: number;
}

function summarise(runs: LoadResult[]): Side {
  return { runs, rps: median(runs.map((r) => r.rps)), cpuUsPerReq: median(runs.map((r) => r.cpuUsPerReq)), p99: median(runs.map((r) => r.p99)) };
}

/** Starts an idnode child on a fresh database in `dir`, with the given config. */
async function startIdnode(dir: string, config: Record<string, unknown>): Promise<Server> {
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({ db: join(dir, 'idnode.db'), listen: { port: 0 }, logLevel: 'warn', ...config }));
  return startServer([CLI, 'serve', '--config', file], { IDNODE_ADMIN_TOKEN: ADMIN }, dir);
}

async function seededPaths(url: string): Promise<{ paths: string[]; meanBytes: number }> {
  const paths: string[] = [];
  let bytes = 0;
  for (const prefix of ['88.100.1', '88.100.2', '88.100.3']) {
    const res = await fetch(`${url}/api/handles?prefix=${prefix}&pageSize=10000`, { headers: { authorization: `Bearer ${ADMIN}` } });
    const { handles } = (await res.json()) as { handles: string[] };
    for (const h of handles) paths.push(`/api/handles/${h}`);
  }
  // Resolve each once: this fills the cache (the hot scenario measures hits) and gives the sizes.
  for (const p of paths) bytes += (await (await fetch(url + p)).arrayBuffer()).byteLength;
  return { paths, meanBytes: Math.round(bytes / paths.length) };
}

/** Cache hits: random keys over the seeded identifiers, every answer already in the LRU. */
async function hot(opts: Options) {
  const dir = mkdtempSync(join(tmpdir(), 'idnode-bench-'));
  const node = await startIdnode(dir, { seed: true });
  try {
    const { paths, meanBytes } = await seededPaths(node.url);
    const bare = await startServer([BARE], { BARE_BODY_BYTES: String(meanBytes) });
    try {
      const idn: LoadResult[] = [];
      const base: LoadResult[] = [];
      // One short warm-up each, so the JIT has settled before anything is counted.
      await load(node, paths, { ...opts, seconds: 2 });
      await load(bare, paths, { ...opts, seconds: 2 });
      for (let i = 0; i < opts.runs; i++) {
        base.push(await load(bare, paths, opts));
        idn.push(await load(node, paths, opts));
        for (const r of [base.at(-1)!, idn.at(-1)!]) if (r.non2xx > 0 || r.errors > 0) throw new Error(`run ${i}: ${r.non2xx} non-2xx, ${r.errors} errors`);
      }
      return { keys: paths.length, bodyBytes: meanBytes, idnode: summarise(idn), bare: summarise(base) };
    } finally {
      await bare.stop();
    }
  } finally {
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const SCENARIOS: Record<string, { about: string; run: (o: Options) => Promise<{ idnode: Side; bare: Side } & Record<string, unknown>>; targets: { rps: number; cpu: number } }> = {
  hot: { about: 'cache hits, random keys over the seeded identifiers', run: hot, targets: { rps: 0.9, cpu: 1.2 } },
};

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { runs: { type: 'string', default: '3' }, seconds: { type: 'string', default: '10' }, connections: { type: 'string', default: '32' } },
  });
  const opts: Options = { runs: Number(values.runs), seconds: Number(values.seconds), connections: Number(values.connections) };
  const names = positionals.length > 0 ? positionals : Object.keys(SCENARIOS);
  for (const name of names) if (!(name in SCENARIOS)) throw new Error(`unknown scenario "${name}"; known: ${Object.keys(SCENARIOS).join(', ')}`);
  const info = runInfo();
  for (const name of names) {
    const s = SCENARIOS[name]!;
    process.stdout.write(`\n## ${name}: ${s.about} (${opts.runs} runs x ${opts.seconds}s, ${opts.connections} connections)\n`);
    const r = await s.run(opts);
    const ratio = { rps: r.idnode.rps / r.bare.rps, cpuPerReq: r.idnode.cpuUsPerReq / r.bare.cpuUsPerReq };
    const row = (label: string, x: Side) =>
      `${label.padEnd(8)} ${x.rps.toFixed(0).padStart(8)} req/s  ${x.cpuUsPerReq.toFixed(1).padStart(6)} µs CPU/req  p99 ${x.p99} ms  runs: ${x.runs.map((y) => y.rps.toFixed(0)).join(', ')}`;
    process.stdout.write(`${row('bare', r.bare)}\n${row('idnode', r.idnode)}\n`);
    process.stdout.write(
      `ratio    throughput ${ratio.rps.toFixed(2)}x bare (target >= ${s.targets.rps})  CPU/req ${ratio.cpuPerReq.toFixed(2)}x bare (target <= ${s.targets.cpu})\n`,
    );
    const out = join(ROOT, 'bench/results', `${name}-${info.date.slice(0, 10)}-${info.commit}.json`);
    writeFileSync(out, `${JSON.stringify({ scenario: name, ...info, options: opts, ratio, targets: s.targets, ...r }, null, 2)}\n`);
    process.stdout.write(`${info.date} node ${info.node} commit ${info.commit}${info.dirty ? ' (dirty)' : ''} ${info.machine}\nwrote ${out}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
