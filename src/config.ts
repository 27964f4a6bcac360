/**
 * One typed, validated config: defaults ← JSON file ← IDNODE_* environment variables.
 * Unknown keys and bad values stop the start with a message naming the key.
 */
import { readFileSync } from 'node:fs';
import { prefixProblem } from './identifier/index.js';

export interface Config {
  listen: { host: string; port: number };
  /** Public base URL of this node, used in HS_SITE values; defaults to http://host:port. */
  baseUrl: string;
  db: string;
  homed: string[];
  upstream: {
    url: string;
    token: string;
    /** Deadline of one forwarded request (connect, headers and body), ms. */
    timeoutMs: number;
    /** Requests in flight to one origin; more are refused with 503/3. */
    maxInFlight: number;
    /** Largest answer accepted from another node, bytes. */
    maxResponseBytes: number;
    /** Consecutive failures that mark an origin down (callers then fail fast). */
    failuresToDown: number;
    /** How long an origin stays down before a probe, ms. */
    downCooldownMs: number;
  };
  sync: {
    /** Statistics reports to the upstream every this many seconds (0: none). */
    statsIntervalSeconds: number;
    /** Longest wait between two attempts to send a report, ms. */
    retryMaxMs: number;
  };
  cache: { maxBytes: number; notFoundTtlSeconds: number; staleWindowSeconds: number };
  limits: {
    /** Largest JSON request body, bytes (Handle.Net's message limit is 256 KiB). */
    bodyMaxBytes: number;
    /** Identifiers in one POST /api/resolve. */
    batchMax: number;
    /** Values in one record. */
    valuesMax: number;
    /** Largest page of GET /api/handles?prefix=. */
    pageSizeMax: number;
    /** Largest line of a bulk NDJSON upload, bytes (the stream as a whole has no limit). */
    bulkLineMaxBytes: number;
  };
  bulk: {
    /** Lines committed per transaction (one audit entry each). */
    chunkSize: number;
  };
  lineage: {
    /** Depth of a lineage query that names none. */
    defaultDepth: number;
    /** Largest depth a lineage query may ask for. */
    maxDepth: number;
    /** Most nodes in one lineage answer (then `truncated: true`). */
    maxNodes: number;
    /** Most identifiers in one event (children, or inputs plus outputs). */
    eventItemsMax: number;
  };
  sqlite: {
    /** Page cache per SQLite connection, bytes. */
    cacheBytes: number;
    /** Bytes of the database file read through mmap (0: off). */
    mmapBytes: number;
  };
  /** Keep record versions and the hash-chained audit log (off only for throwaway nodes). */
  history: boolean;
  changes: {
    /** How often a node looks for writes by other processes (CLI, other workers), ms. */
    pollMs: number;
    /** Change-feed rows kept; a node further behind drops its whole cache. */
    retention: number;
  };
  shedding: {
    /** Requests in flight on the fastify path (misses, writes, forwarding); more get 503/3 (0: no bound). */
    maxInFlight: number;
    /** Longest event-loop delay within a 200 ms check that turns shedding on, ms (0: off). */
    eventLoopDelayMs: number;
  };
  /** Processes serving the port (node:cluster), each with its own cache. */
  workers: number;
  /** On SIGTERM/SIGINT: how long to let requests in flight finish before exiting anyway, ms. */
  shutdownTimeoutMs: number;
  seed: boolean;
  /** Folder with prefixes.json and records.ndjson; empty = the seeds/ shipped with idnode. */
  seedDir: string;
  /** Log each request (costs about 1.6x CPU on the hot path; off by default). */
  logRequests: boolean;
  logLevel: string;
}

export function defaultConfig(): Config {
  return {
    listen: { host: '127.0.0.1', port: 8000 },
    baseUrl: '',
    db: 'data/idnode.db',
    homed: ['88.100'],
    upstream: { url: '', token: '', timeoutMs: 5000, maxInFlight: 256, maxResponseBytes: 1024 * 1024, failuresToDown: 5, downCooldownMs: 10_000 },
    sync: { statsIntervalSeconds: 60, retryMaxMs: 30_000 },
    cache: { maxBytes: 256 * 1024 * 1024, notFoundTtlSeconds: 5, staleWindowSeconds: 86400 },
    limits: { bodyMaxBytes: 256 * 1024, batchMax: 1000, valuesMax: 2048, pageSizeMax: 10000, bulkLineMaxBytes: 256 * 1024 },
    bulk: { chunkSize: 1000 },
    lineage: { defaultDepth: 10, maxDepth: 50, maxNodes: 10000, eventItemsMax: 1000 },
    sqlite: { cacheBytes: 64 * 1024 * 1024, mmapBytes: 2 * 1024 ** 3 },
    history: true,
    changes: { pollMs: 20, retention: 100_000 },
    shedding: { maxInFlight: 1024, eventLoopDelayMs: 500 },
    workers: 1,
    shutdownTimeoutMs: 10_000,
    seed: false,
    seedDir: '',
    logRequests: false,
    logLevel: 'info',
  };
}

type Kind = 'string' | 'int' | 'bool' | 'prefixes' | 'url' | 'level';
/** Every leaf key with its kind and bounds; the single list both validation and env use. */
const KEYS: Record<string, { kind: Kind; min?: number; max?: number }> = {
  'listen.host': { kind: 'string' },
  'listen.port': { kind: 'int', min: 0, max: 65535 },
  baseUrl: { kind: 'url' },
  db: { kind: 'string' },
  homed: { kind: 'prefixes' },
  'upstream.url': { kind: 'url' },
  'upstream.token': { kind: 'string' },
  'upstream.timeoutMs': { kind: 'int', min: 1, max: 600_000 },
  'upstream.maxInFlight': { kind: 'int', min: 1, max: 100_000 },
  'upstream.maxResponseBytes': { kind: 'int', min: 1024, max: 256 * 1024 * 1024 },
  'upstream.failuresToDown': { kind: 'int', min: 1, max: 1000 },
  'upstream.downCooldownMs': { kind: 'int', min: 1, max: 3_600_000 },
  'sync.statsIntervalSeconds': { kind: 'int', min: 0, max: 86400 },
  'sync.retryMaxMs': { kind: 'int', min: 100, max: 3_600_000 },
  'cache.maxBytes': { kind: 'int', min: 0, max: 64 * 1024 ** 3 },
  'cache.notFoundTtlSeconds': { kind: 'int', min: 0, max: 86400 },
  'cache.staleWindowSeconds': { kind: 'int', min: 0, max: 30 * 86400 },
  'limits.bodyMaxBytes': { kind: 'int', min: 1024, max: 64 * 1024 * 1024 },
  'limits.batchMax': { kind: 'int', min: 1, max: 100_000 },
  'limits.valuesMax': { kind: 'int', min: 1, max: 100_000 },
  'limits.pageSizeMax': { kind: 'int', min: 1, max: 1_000_000 },
  'limits.bulkLineMaxBytes': { kind: 'int', min: 1024, max: 64 * 1024 * 1024 },
  'bulk.chunkSize': { kind: 'int', min: 1, max: 100_000 },
  'lineage.defaultDepth': { kind: 'int', min: 1, max: 1000 },
  'lineage.maxDepth': { kind: 'int', min: 1, max: 1000 },
  'lineage.maxNodes': { kind: 'int', min: 1, max: 10_000_000 },
  'lineage.eventItemsMax': { kind: 'int', min: 1, max: 1_000_000 },
  'sqlite.cacheBytes': { kind: 'int', min: 1024 * 1024, max: 64 * 1024 ** 3 },
  'sqlite.mmapBytes': { kind: 'int', min: 0, max: 1024 ** 4 },
  history: { kind: 'bool' },
  'changes.pollMs': { kind: 'int', min: 1, max: 60_000 },
  'changes.retention': { kind: 'int', min: 1, max: 100_000_000 },
  'shedding.maxInFlight': { kind: 'int', min: 0, max: 1_000_000 },
  'shedding.eventLoopDelayMs': { kind: 'int', min: 0, max: 60_000 },
  workers: { kind: 'int', min: 1, max: 64 },
  shutdownTimeoutMs: { kind: 'int', min: 0, max: 3_600_000 },
  seed: { kind: 'bool' },
  seedDir: { kind: 'string' },
  logRequests: { kind: 'bool' },
  logLevel: { kind: 'level' },
};

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** `upstream.timeoutMs` → `IDNODE_UPSTREAM_TIMEOUT_MS`. */
export function envName(key: string): string {
  return `IDNODE_${key
    .replace(/\./g, '_')
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase()}`;
}

function coerce(key: string, raw: unknown, fromEnv: boolean): unknown {
  const spec = KEYS[key]!;
  const where = fromEnv ? `${envName(key)} (config key "${key}")` : `config key "${key}"`;
  switch (spec.kind) {
    case 'string':
      if (typeof raw !== 'string') throw new ConfigError(`${where} must be a string`);
      return raw;
    case 'url':
      if (typeof raw !== 'string') throw new ConfigError(`${where} must be a string URL such as http://127.0.0.1:8001`);
      if (raw === '') return raw;
      try {
        const u = new URL(raw);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
      } catch {
        throw new ConfigError(`${where} must be an http(s) URL such as http://127.0.0.1:8001, got "${raw}"`);
      }
      return raw.replace(/\/+$/, '');
    case 'level':
      if (typeof raw !== 'string' || !LEVELS.includes(raw)) throw new ConfigError(`${where} must be one of ${LEVELS.join(', ')}`);
      return raw;
    case 'bool':
      if (fromEnv && typeof raw === 'string') {
        if (['1', 'true', 'yes'].includes(raw)) return true;
        if (['0', 'false', 'no', ''].includes(raw)) return false;
      }
      if (typeof raw !== 'boolean') throw new ConfigError(`${where} must be true or false`);
      return raw;
    case 'int': {
      const n = fromEnv && typeof raw === 'string' && /^-?\d+$/.test(raw) ? Number(raw) : raw;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < spec.min! || n > spec.max!)
        throw new ConfigError(`${where} must be an integer from ${spec.min} to ${spec.max}, got ${JSON.stringify(raw)}`);
      return n;
    }
    case 'prefixes': {
      const list =
        fromEnv && typeof raw === 'string'
          ? raw
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean)
          : raw;
      if (!Array.isArray(list)) throw new ConfigError(`${where} must be a list of prefixes such as ["88.100"]`);
      for (const p of list) {
        const problem = typeof p === 'string' ? prefixProblem(p) : 'it is not a string';
        if (problem !== undefined) throw new ConfigError(`${where}: "${String(p)}" is not a valid prefix: ${problem}`);
      }
      return list;
    }
  }
}

function setPath(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let obj = target;
  for (const part of parts.slice(0, -1)) obj = obj[part] as Record<string, unknown>;
  obj[parts[parts.length - 1]!] = value;
}

function flatten(obj: unknown, path: string, out: Map<string, unknown>): void {
  const isGroup = (k: string) => Object.keys(KEYS).some((key) => key.startsWith(`${k}.`));
  if (path !== '' && !isGroup(path)) {
    out.set(path, obj);
    return;
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new ConfigError(`config key "${path || '(top level)'}" must be an object`);
  for (const [k, v] of Object.entries(obj)) {
    const key = path === '' ? k : `${path}.${k}`;
    if (!(key in KEYS) && !isGroup(key)) throw new ConfigError(`unknown config key "${key}"`);
    flatten(v, key, out);
  }
}

/**
 * Builds the config. `file` is a JSON config path (optional); `overrides` are applied after
 * the file (the embedded default uses them), then the environment.
 */
export function loadConfig(opts: { file?: string; overrides?: Record<string, unknown>; env?: NodeJS.ProcessEnv } = {}): Config {
  const config = defaultConfig() as unknown as Record<string, unknown>;
  const layers: Array<[Map<string, unknown>, boolean]> = [];
  if (opts.file !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(opts.file, 'utf8'));
    } catch (err) {
      throw new ConfigError(`cannot read config file ${opts.file}: ${(err as Error).message}`);
    }
    const fromFile = new Map<string, unknown>();
    flatten(parsed, '', fromFile);
    layers.push([fromFile, false]);
  }
  if (opts.overrides) {
    const o = new Map<string, unknown>();
    flatten(opts.overrides, '', o);
    layers.push([o, false]);
  }
  const env = opts.env ?? process.env;
  const fromEnv = new Map<string, unknown>();
  const known = new Set(Object.keys(KEYS).map(envName));
  for (const key of Object.keys(KEYS)) {
    const v = env[envName(key)];
    if (v !== undefined) fromEnv.set(key, v);
  }
  for (const name of Object.keys(env)) {
    if (name.startsWith('IDNODE_') && !known.has(name) && name !== 'IDNODE_ADMIN_TOKEN')
      throw new ConfigError(`unknown environment variable ${name}; known: ${[...known].join(', ')}, IDNODE_ADMIN_TOKEN`);
  }
  layers.push([fromEnv, true]);
  for (const [layer, isEnv] of layers) for (const [k, v] of layer) setPath(config, k, coerce(k, v, isEnv));
  const c = config as unknown as Config;
  if (c.lineage.defaultDepth > c.lineage.maxDepth)
    throw new ConfigError(`config key "lineage.defaultDepth" (${c.lineage.defaultDepth}) must not exceed "lineage.maxDepth" (${c.lineage.maxDepth})`);
  if (c.baseUrl === '') c.baseUrl = `http://${c.listen.host.includes(':') ? `[${c.listen.host}]` : c.listen.host}:${c.listen.port}`;
  return c;
}

/** Every config key with its environment variable, for README and `--help`. */
export function configKeys(): Array<{ key: string; env: string; kind: string }> {
  return Object.entries(KEYS).map(([key, s]) => ({ key, env: envName(key), kind: s.kind }));
}
