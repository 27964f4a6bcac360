/**
 * One typed, validated config: defaults ← JSON file ← IDNODE_* environment variables.
 * Every key is declared once, in src/config/schema.ts; this file validates against it.
 * Unknown keys and bad values stop the start with a message naming the key.
 */
import { readFileSync } from 'node:fs';
import { prefixProblem } from './identifier/index.js';
import { CONFIG_KEYS, CROSS_CHECKS, type Config, type ConfigKey, type KeySpec } from './config/schema.js';

export { CONFIG_KEYS, type Config, type ConfigKey, type KeySpec } from './config/schema.js';
export { renderConfigHelp, renderConfigTable } from './config/docs.js';

const SPECS: Record<string, KeySpec> = CONFIG_KEYS;
const KEY_NAMES = Object.keys(CONFIG_KEYS) as ConfigKey[];
/** Every dotted prefix of a key (`upstream` of `upstream.url`): the objects a file may hold. */
const GROUPS = new Set(
  KEY_NAMES.flatMap((key) =>
    key
      .split('.')
      .slice(0, -1)
      .map((_, i, parts) => parts.slice(0, i + 1).join('.')),
  ),
);
/** Read by loadConfig although it is no config key: the first admin token's secret. */
const ADMIN_TOKEN_ENV = 'IDNODE_ADMIN_TOKEN';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** `upstream.timeoutMs` → `IDNODE_UPSTREAM_TIMEOUT_MS`: the convention every key's `env` follows. */
export function envName(key: string): string {
  return `IDNODE_${key
    .replace(/\./g, '_')
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase()}`;
}

function coerce(key: string, raw: unknown, fromEnv: boolean): unknown {
  const spec = SPECS[key]!;
  const where = fromEnv ? `${spec.env} (config key "${key}")` : `config key "${key}"`;
  const checkLength = (s: string, max: number) => {
    if (s.length > max) throw new ConfigError(`${where} must be at most ${max} characters long, got ${s.length}`);
  };
  switch (spec.kind) {
    case 'string':
      if (typeof raw !== 'string') throw new ConfigError(`${where} must be a string`);
      checkLength(raw, spec.maxLength);
      return raw;
    case 'url':
      if (typeof raw !== 'string') throw new ConfigError(`${where} must be a string URL such as http://127.0.0.1:8001`);
      if (raw === '') return raw;
      checkLength(raw, spec.maxLength);
      try {
        const u = new URL(raw);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
      } catch {
        throw new ConfigError(`${where} must be an http(s) URL such as http://127.0.0.1:8001, got "${raw}"`);
      }
      return raw.replace(/\/+$/, '');
    case 'enum':
      if (typeof raw !== 'string' || !spec.values.includes(raw)) throw new ConfigError(`${where} must be one of ${spec.values.join(', ')}`);
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
      if (typeof n !== 'number' || !Number.isInteger(n) || n < spec.min || n > spec.max)
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
      if (list.length > spec.maxItems) throw new ConfigError(`${where} must list at most ${spec.maxItems} prefixes, got ${list.length}`);
      for (const p of list) {
        const problem = typeof p === 'string' ? prefixProblem(p) : 'it is not a string';
        if (problem !== undefined) throw new ConfigError(`${where}: "${String(p)}" is not a valid prefix: ${problem}`);
      }
      return list;
    }
  }
}

function flatten(obj: unknown, path: string, out: Map<string, unknown>): void {
  if (path !== '' && !GROUPS.has(path)) {
    out.set(path, obj);
    return;
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new ConfigError(`config key "${path || '(top level)'}" must be an object`);
  for (const [k, v] of Object.entries(obj)) {
    const key = path === '' ? k : `${path}.${k}`;
    if (!(key in SPECS) && !GROUPS.has(key)) throw new ConfigError(`unknown config key "${key}"`);
    flatten(v, key, out);
  }
}

/** Dotted keys → the nested object the rest of the code reads (`config.upstream.url`). */
function nest(flat: Record<string, unknown>): Config {
  const root: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flat)) {
    const parts = key.split('.');
    let obj = root;
    for (const part of parts.slice(0, -1)) obj = (obj[part] ??= {}) as Record<string, unknown>;
    obj[parts[parts.length - 1]!] = value;
  }
  return root as Config;
}

function defaults(): Record<ConfigKey, unknown> {
  // Lists are copied so that a caller changing its config cannot change the schema's default.
  return Object.fromEntries(KEY_NAMES.map((key) => [key, structuredClone(CONFIG_KEYS[key].default)])) as Record<ConfigKey, unknown>;
}

/** The defaults as declared (baseUrl '' until loadConfig derives it). */
export function defaultConfig(): Config {
  return nest(defaults());
}

/**
 * Builds the config. `file` is a JSON config path (optional); `overrides` are applied after
 * the file (the embedded default uses them), then the environment.
 */
export function loadConfig(opts: { file?: string; overrides?: Record<string, unknown>; env?: NodeJS.ProcessEnv } = {}): Config {
  const values = defaults();
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
  const known = new Set(KEY_NAMES.map((key) => CONFIG_KEYS[key].env as string));
  for (const key of KEY_NAMES) {
    const v = env[CONFIG_KEYS[key].env];
    if (v !== undefined) fromEnv.set(key, v);
  }
  for (const name of Object.keys(env)) {
    if (name.startsWith('IDNODE_') && !known.has(name) && name !== ADMIN_TOKEN_ENV)
      throw new ConfigError(`unknown environment variable ${name}; known: ${[...known].join(', ')}, ${ADMIN_TOKEN_ENV}`);
  }
  layers.push([fromEnv, true]);
  for (const [layer, isEnv] of layers) for (const [k, v] of layer) values[k as ConfigKey] = coerce(k, v, isEnv);
  for (const check of CROSS_CHECKS) {
    const problem = check(values);
    if (problem !== undefined) throw new ConfigError(problem);
  }
  const c = nest(values);
  if (c.baseUrl === '') c.baseUrl = `http://${c.listen.host.includes(':') ? `[${c.listen.host}]` : c.listen.host}:${c.listen.port}`;
  return c;
}

/** Every config key with its environment variable, kind, default and description. */
export function configKeys(): Array<{ key: ConfigKey; env: string; kind: KeySpec['kind']; default: unknown; doc: string }> {
  return KEY_NAMES.map((key) => {
    const s: KeySpec = CONFIG_KEYS[key];
    return { key, env: s.env, kind: s.kind, default: s.default, doc: s.doc };
  });
}
