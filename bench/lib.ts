/** Shared bench plumbing: child servers, their CPU time, autocannon runs, medians, run metadata. */
import autocannon from 'autocannon';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';

export interface Server {
  url: string;
  child: ChildProcess;
  /** Process CPU time (user + system), ms, read from /proc. */
  cpuMs(): number;
  stop(): Promise<void>;
}

/** ms per clock tick of /proc's CPU times. */
export const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim() || '100');

export function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the command name.
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** Starts `node <args>` and waits for a line "listening on http://…". */
export function startServer(args: string[], env: Record<string, string> = {}, cwd?: string): Promise<Server> {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}${err}`)), 120_000);
    child.on('exit', (code) => reject(new Error(`server exited ${code}: ${out}${err}`)));
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m === null) return;
      clearTimeout(timer);
      resolve({
        url: m[1]!,
        child,
        cpuMs: () => cpuMsOf(child.pid!),
        stop: () =>
          new Promise((done) => {
            if (child.exitCode !== null) return done();
            child.once('exit', () => done());
            child.kill('SIGTERM');
            setTimeout(() => child.kill('SIGKILL'), 5000).unref();
          }),
      });
    });
  });
}

export interface LoadResult {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  cpuMs: number;
  /** Server CPU per request, microseconds. */
  cpuUsPerReq: number;
}

export interface LoadOptions {
  seconds: number;
  /** Send exactly this many requests instead of running for `seconds`. */
  amount?: number;
  connections: number;
  headers?: Record<string, string>;
  method?: 'GET' | 'PUT' | 'POST';
  /** Sets path (and method, headers, body) of each request; the default GETs one of `paths` at random. */
  next?: (req: { path: string; method?: string; headers?: Record<string, string>; body?: string | Buffer }) => void;
}

/** Drives `server` with autocannon; GETs a random one of `paths` unless `opts.next` says otherwise. */
export async function load(server: Server, paths: string[], opts: LoadOptions): Promise<LoadResult> {
  const next =
    opts.next ??
    ((req: { path: string }) => {
      req.path = paths[Math.floor(Math.random() * paths.length)]!;
    });
  const cpu0 = server.cpuMs();
  const t0 = performance.now();
  const result = await autocannon({
    url: server.url,
    connections: opts.connections,
    ...(opts.amount !== undefined ? { amount: opts.amount } : { duration: opts.seconds }),
    headers: opts.headers ?? {},
    requests: [
      {
        method: opts.method ?? 'GET',
        setupRequest: (req: { path: string; method?: string; headers?: Record<string, string>; body?: string | Buffer }) => {
          next(req);
          return req;
        },
      },
    ],
  } as autocannon.Options);
  const cpuMs = server.cpuMs() - cpu0;
  const requests = result.requests.total;
  const seconds = opts.amount !== undefined ? (performance.now() - t0) / 1000 : opts.seconds;
  return {
    requests,
    rps: requests / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    cpuMs,
    cpuUsPerReq: requests === 0 ? NaN : (cpuMs * 1000) / requests,
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function runInfo(): { date: string; node: string; commit: string; dirty: boolean; machine: string } {
  let commit = 'unknown';
  let dirty = false;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() !== '';
  } catch {
    /* not a git checkout */
  }
  const c = cpus();
  return { date: new Date().toISOString(), node: process.version, commit, dirty, machine: `${c.length} x ${c[0]?.model ?? 'cpu'}` };
}
