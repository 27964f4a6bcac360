/**
 * The wrk scenario set: wrk (C, one thread) costs far less CPU per request than autocannon, and
 * the server under test and the client each get a core of their own (`taskset`: the server on
 * core 1, wrk on core 0), so throughput measures the server rather than the client. Needs
 * `wrk` and `taskset` on the PATH (Debian: `apt-get install -y wrk`; taskset is util-linux).
 */
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LoadResult, Server } from './lib.js';

/** The bench runs from dist/bench/: the Lua script stays in the source tree. */
const SCRIPT = fileURLToPath(new URL('../../bench/wrk/random.lua', import.meta.url));
/** The core the servers run on, and the client's. */
export const SERVER_CORE = 1;
export const CLIENT_CORE = 0;

/** Throws with the install hint when wrk or taskset is missing. */
export function checkWrk(): void {
  for (const [tool, hint] of [
    ['wrk', 'apt-get install -y wrk'],
    ['taskset', 'apt-get install -y util-linux'],
  ] as const)
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`the wrk scenarios need ${tool} (${hint})`);
    }
}

/** Moves every thread of the server's process to `core` (threads it starts later inherit it). */
export function pin(server: Server, core = SERVER_CORE): void {
  execFileSync('taskset', ['-a', '-p', '-c', String(core), String(server.child.pid)], { stdio: 'ignore' });
}

/** wrk latency text ("812.00us", "1.20ms", "2.01s") in ms. */
export function latencyMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (m === null) return NaN;
  const x = Number(m[1]);
  return m[2] === 'us' ? x / 1000 : m[2] === 'ms' ? x : m[2] === 's' ? x * 1000 : x * 60_000;
}

/** The numbers of one wrk run's report (`--latency`). */
export function parseWrk(out: string): Pick<LoadResult, 'requests' | 'p50' | 'p99' | 'non2xx' | 'errors'> {
  const requests = /(\d+) requests in/.exec(out);
  if (requests === null) throw new Error(`wrk printed no request count:\n${out}`);
  const pct = (p: string) => latencyMs(new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(out)?.[1] ?? '');
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests: Number(requests[1]),
    p50: pct('50'),
    p99: pct('99'),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    errors: socket === null ? 0 : socket.slice(1).reduce((a, x) => a + Number(x), 0),
  };
}

export interface WrkOptions {
  seconds: number;
  connections: number;
  /** After `--` in the Lua script's args: ['paths', file] or ['notfound', prefix]. */
  args: string[];
}

/** One wrk run against `server` from core 0; the server's CPU time from /proc around it. */
export function wrkLoad(server: Server, opts: WrkOptions): Promise<LoadResult> {
  const argv = [
    '-c',
    String(CLIENT_CORE),
    'wrk',
    '-t1',
    `-c${opts.connections}`,
    `-d${opts.seconds}s`,
    '--latency',
    '-s',
    SCRIPT,
    server.url,
    '--',
    ...opts.args,
  ];
  const cpu0 = server.cpuMs();
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`wrk exited ${code}:\n${out}`));
      const cpuMs = server.cpuMs() - cpu0;
      try {
        const r = parseWrk(out);
        resolve({ ...r, rps: r.requests / opts.seconds, cpuMs, cpuUsPerReq: r.requests === 0 ? NaN : (cpuMs * 1000) / r.requests });
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  });
}
