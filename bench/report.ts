/**
 * `npm run bench:report`: rewrites the tables of bench/README.md from bench/results/*.json, so
 * the numbers in the README are always those of a committed run. The prose is kept; only what
 * is between `<!-- bench:KIND key=value … -->` and `<!-- /bench -->` is replaced.
 * `--check` exits 1 instead when the README differs (test/bench-report.test.ts does the same).
 *
 * Kinds: `latest` (the newest run of each scenario, every ratio against its target), `round`
 * (the oldest and newest run of each scenario on the newest results' day), `history` (every
 * run of a scenario), `sides` (one run: req/s, CPU per request, p99 of each side), `notes` (one
 * run's named notes, for figures that are not sides) and `zipf`
 * (the hit-ratio table of the newest zipf run). Result files from before 2026-11-25 16:00 have
 * another shape (`idnode`, `bare`, `ratio`, `targets` at the top level): `normalise` reads both.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ZipfRow, zipfTable } from './zipf.js';

export interface Side {
  rps: number;
  cpuUsPerReq: number;
  p99: number;
  /** req/s of each run. */
  runs: number[];
}

export interface Ratio {
  name: string;
  value: number;
  target?: string;
}

export interface Run {
  /** The result file's name without `.json`. */
  file: string;
  scenario: string;
  date: string;
  node: string;
  commit: string;
  dirty: boolean;
  machine: string;
  options: { runs?: number; seconds?: number; connections?: number };
  sides: Record<string, Side>;
  ratios: Ratio[];
  notes: Record<string, unknown>;
}

type Json = Record<string, any>;

function side(s: Json): Side {
  return { rps: s.rps, cpuUsPerReq: s.cpuUsPerReq, p99: s.p99, runs: Array.isArray(s.runs) ? s.runs.map((r: Json) => r.rps as number) : [] };
}

/** One result file in the current shape, whatever shape it was written in. */
export function normalise(file: string, j: Json): Run {
  const base = {
    file,
    scenario: j.scenario as string,
    date: j.date as string,
    node: j.node as string,
    commit: j.commit as string,
    dirty: j.dirty === true,
    machine: j.machine as string,
    options: (j.options ?? {}) as Run['options'],
  };
  if (j.sides !== undefined)
    return {
      ...base,
      sides: Object.fromEntries(Object.entries(j.sides as Json).map(([k, v]) => [k, side(v as Json)])),
      ratios: (j.ratios ?? []) as Ratio[],
      notes: (j.notes ?? {}) as Json,
    };
  // The first shape (hot, 2026-11-25 15:20): two sides and two ratios at the top level.
  const target = (op: string, x: number | undefined) => (x === undefined ? {} : { target: `${op} ${x.toFixed(2)}` });
  return {
    ...base,
    sides: { bare: side(j.bare), idnode: side(j.idnode) },
    ratios: [
      { name: 'throughput idnode/bare', value: j.ratio.rps, ...target('>=', j.targets?.rps) },
      { name: 'CPU per request idnode/bare', value: j.ratio.cpuPerReq, ...target('<=', j.targets?.cpu) },
    ],
    notes: { keys: j.keys, bodyBytes: j.bodyBytes },
  };
}

export function loadRuns(dir: string): Run[] {
  const runs = readdirSync(dir)
    // overload.ts reproduces a failure mode rather than measuring a speed: its own table, by hand.
    .filter((f) => f.endsWith('.json') && !f.startsWith('overload-'))
    .map((f) => normalise(f.slice(0, -5), JSON.parse(readFileSync(join(dir, f), 'utf8')) as Json));
  return runs.sort((a, b) => a.date.localeCompare(b.date) || a.file.localeCompare(b.file));
}

const int = (x: number) => Math.round(x).toLocaleString('en-US');
const us = (x: number) => x.toFixed(1);
const times = (x: number) => `${x.toFixed(2)}×`;
const when = (r: Run) => r.date.slice(0, 16).replace('T', ' ');

/** "2026-11-30 04:20, db81916, 3 × 10 s" (+ dirty tree, smoke run). */
function runLabel(r: Run): string {
  // A run without sides (zipf) carries the default options but ran no load.
  const shape =
    r.options.runs !== undefined && r.options.seconds !== undefined && Object.keys(r.sides).length > 0 ? `, ${r.options.runs} × ${r.options.seconds} s` : '';
  const flags = [r.dirty ? 'uncommitted changes' : '', r.notes.smoke === true ? '**smoke run**' : ''].filter((x) => x !== '');
  return `${when(r)}, ${r.commit}${shape}${flags.length > 0 ? ` (${flags.join(', ')})` : ''}`;
}

/** "met" / "missed" for a target such as ">= 0.90" or "<= 1.20"; "" without one. */
export function verdict(ratio: Ratio): string {
  const m = /^(>=|<=)\s*([\d.]+)$/.exec(ratio.target ?? '');
  if (m === null) return '';
  const limit = Number(m[2]);
  // Judged on the value as shown (two decimals), so a row never reads "1.20×, <= 1.20, missed".
  const shown = Number(ratio.value.toFixed(2));
  return (m[1] === '>=' ? shown >= limit : shown <= limit) ? 'met' : '**missed**';
}

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

function newest(runs: Run[], scenario: string): Run {
  const mine = runs.filter((r) => r.scenario === scenario);
  if (mine.length === 0) throw new Error(`no result file for scenario "${scenario}"`);
  return mine[mine.length - 1]!;
}

function scenariosOf(runs: Run[], param: string | undefined): string[] {
  if (param !== undefined) return param.split(',');
  return [...new Set(runs.map((r) => r.scenario))].sort();
}

function latest(runs: Run[], params: Record<string, string>): string {
  const rows: string[][] = [];
  for (const scenario of scenariosOf(runs, params.scenario)) {
    const r = newest(runs, scenario);
    r.ratios.forEach((ratio, i) =>
      rows.push([i === 0 ? `${scenario}` : '', i === 0 ? runLabel(r) : '', ratio.name, times(ratio.value), ratio.target ?? '', verdict(ratio)]),
    );
  }
  return table(['scenario', 'newest run', 'ratio', 'value', 'target', ''], rows);
}

/** The runs on the newest results' day: per scenario its oldest ("before") and newest ("after") run. */
function round(runs: Run[], params: Record<string, string>): string {
  const day = runs[runs.length - 1]!.date.slice(0, 10);
  const rows: string[][] = [];
  for (const scenario of scenariosOf(runs, params.scenario)) {
    const today = runs.filter((r) => r.scenario === scenario && r.date.startsWith(day));
    if (today.length === 0) continue;
    const before = today[0]!;
    const after = today[today.length - 1]!;
    for (const ratio of after.ratios) {
      const old = before === after ? undefined : before.ratios.find((x) => x.name === ratio.name);
      rows.push([scenario, ratio.name, old === undefined ? '—' : `${times(old.value)} (${before.commit})`, `${times(ratio.value)} (${after.commit})`]);
    }
  }
  return table(['scenario', 'ratio', `before: oldest run of ${day}`, 'after: newest run'], rows);
}

function history(runs: Run[], params: Record<string, string>): string {
  const mine = runs.filter((r) => scenariosOf(runs, params.scenario).includes(r.scenario));
  const sides = [...new Set(mine.flatMap((r) => Object.keys(r.sides)))];
  const ratios = [...new Set(mine.flatMap((r) => r.ratios.map((x) => x.name)))];
  const head = ['run', 'Node', ...sides.flatMap((s) => [`${s} req/s`, `${s} µs CPU/req`]), ...ratios];
  const rows = mine.map((r) => [
    runLabel(r),
    r.node,
    ...sides.flatMap((s) => (r.sides[s] === undefined ? ['—', '—'] : [int(r.sides[s].rps), us(r.sides[s].cpuUsPerReq)])),
    ...ratios.map((name) => {
      const x = r.ratios.find((y) => y.name === name);
      return x === undefined ? '—' : times(x.value);
    }),
  ]);
  return table(head, rows);
}

function sides(runs: Run[], params: Record<string, string>): string {
  const r = params.file !== undefined ? runs.find((x) => x.file === params.file) : newest(runs, params.scenario ?? '');
  if (r === undefined) throw new Error(`no result file ${params.file}.json`);
  const rows = Object.entries(r.sides).map(([name, s]) => [name, int(s.rps), us(s.cpuUsPerReq), String(s.p99), s.runs.map(int).join(' / ')]);
  return `${r.scenario}, ${runLabel(r)}, Node ${r.node}, ${r.machine}:\n\n${table(['side', 'req/s (median)', 'µs CPU/req', 'p99 ms', 'runs (req/s)'], rows)}`;
}

function noteValue(x: unknown): string {
  if (Array.isArray(x)) return x.map(noteValue).join(' / ');
  if (typeof x === 'object' && x !== null)
    return Object.entries(x)
      .map(([k, v]) => `${k} ${noteValue(v)}`)
      .join(', ');
  return typeof x === 'number' ? x.toLocaleString('en-US', { maximumFractionDigits: 3 }) : String(x);
}

/** Named notes of one run (`keys=a,b`; all without it): the figures of a scenario that has no sides, e.g. pg-visibility. */
function notes(runs: Run[], params: Record<string, string>): string {
  const r = params.file !== undefined ? runs.find((x) => x.file === params.file) : newest(runs, params.scenario ?? '');
  if (r === undefined) throw new Error(`no result file ${params.file}.json`);
  const keys = params.keys?.split(',') ?? Object.keys(r.notes);
  const rows = keys.map((k) => [k, r.notes[k] === undefined ? '—' : noteValue(r.notes[k])]);
  return `${r.scenario}, ${runLabel(r)}, Node ${r.node}, ${r.machine}:\n\n${table(['note', 'value'], rows)}`;
}

function zipf(runs: Run[]): string {
  const r = newest(runs, 'zipf');
  return `${runLabel(r)}, Node ${r.node}, ${int(Number(r.notes.keys))} keys, ${int(Number(r.notes.requests))} requests, seed ${String(r.notes.seed)}:\n\n${zipfTable(r.notes.rows as ZipfRow[])}`;
}

const KINDS: Record<string, (runs: Run[], params: Record<string, string>) => string> = { latest, round, history, sides, notes, zipf };

const BLOCK = /<!-- bench:(\w+)((?: [\w-]+=[^\s>]+)*) -->\n[\s\S]*?<!-- \/bench -->/g;

/** The README with every generated block rewritten from `runs`. */
export function renderReadme(readme: string, runs: Run[]): string {
  const opened = readme.match(/<!-- bench:/g)?.length ?? 0;
  const closed = readme.match(/<!-- \/bench -->/g)?.length ?? 0;
  if (opened !== closed) throw new Error(`bench/README.md: ${opened} generated blocks opened, ${closed} closed`);
  return readme.replace(BLOCK, (_all, kind: string, rawParams: string) => {
    const render = KINDS[kind];
    if (render === undefined) throw new Error(`bench/README.md: unknown block kind "${kind}" (known: ${Object.keys(KINDS).join(', ')})`);
    const params = Object.fromEntries(
      rawParams
        .trim()
        .split(' ')
        .filter((p) => p !== '')
        .map((p) => p.split('=') as [string, string]),
    );
    return `<!-- bench:${kind}${rawParams} -->\n${render(runs, params)}\n<!-- /bench -->`;
  });
}

export const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url)).replace(/\/dist\/bench\/$/, '/bench/');

function main(): void {
  const readmePath = join(BENCH_DIR, 'README.md');
  const readme = readFileSync(readmePath, 'utf8');
  const next = renderReadme(readme, loadRuns(join(BENCH_DIR, 'results')));
  if (process.argv.includes('--check')) {
    if (next !== readme) {
      process.stderr.write('bench/README.md: tables differ from bench/results; run `npm run bench:report`\n');
      process.exitCode = 1;
    }
    return;
  }
  writeFileSync(readmePath, next);
  process.stdout.write(next === readme ? 'bench/README.md: tables up to date\n' : 'bench/README.md: tables rewritten\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) main();
