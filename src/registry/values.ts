/**
 * Handle values: validation of what clients send (with messages that say what to fix),
 * merging with an existing record, and the rendering Handle.Net uses.
 */
import { IdnError } from '../errors.js';
import { parseIdentifier } from '../identifier/index.js';

export const FORMATS = ['string', 'base64', 'hex', 'admin', 'vlist', 'site', 'key'] as const;
export type Format = (typeof FORMATS)[number];
export const DEFAULT_TTL = 86400;
export const DEFAULT_PERMISSIONS = '1110';
const MAX_INDEX = 4294967295;
const MAX_TTL = 2147483647;
const MAX_TYPE_LENGTH = 256;

export interface Reference {
  handle: string;
  index: number;
}

/** A value as stored and rendered (property order is the wire order). */
export interface HandleValue {
  index: number;
  type: string;
  data: { format: Format; value: unknown };
  ttl: number | string;
  timestamp: string;
  permissions?: string;
  references?: Reference[];
}

export type InputValue = Omit<HandleValue, 'timestamp'>;

/** Handle.Net renders HS_ADMIN permissions as 12 flags, the missing ones off. */
const ADMIN_PERMISSION_BITS = 12;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const HEX = /^(?:[0-9a-fA-F]{2})*$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;

function bad(message: string): IdnError {
  return new IdnError('IDN_INVALID_VALUE', message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A value index: a JSON integer, or the same number as a decimal string (`"200"`, as
 * pyhandle sends HS_ADMIN's index and Handle.Net accepts); undefined when it is neither.
 */
function indexOf(v: unknown): number | undefined {
  const n = typeof v === 'string' && /^\d{1,10}$/.test(v) ? Number(v) : v;
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= MAX_INDEX ? n : undefined;
}

function checkReference(r: unknown, where: string): Reference {
  const index = isObject(r) ? indexOf(r.index) : undefined;
  if (!isObject(r) || typeof r.handle !== 'string' || index === undefined) throw bad(`${where} must be {"handle": "<identifier>", "index": <1..${MAX_INDEX}>}`);
  try {
    parseIdentifier(r.handle);
  } catch (err) {
    throw bad(`${where}.handle: ${(err as Error).message}`);
  }
  return { handle: r.handle, index };
}

function checkData(data: unknown, where: string): HandleValue['data'] {
  if (typeof data === 'string') return { format: 'string', value: data };
  if (!isObject(data)) throw bad(`${where}.data must be a string or {"format": "...", "value": ...}`);
  // Other fields of data are ignored, as Handle.Net ignores them.
  const format = data.format ?? 'string';
  const value = data.value;
  if (typeof format !== 'string' || !(FORMATS as readonly string[]).includes(format))
    throw bad(`${where}.data.format must be one of ${FORMATS.join(', ')}; got ${JSON.stringify(format)}`);
  if (value === undefined) throw bad(`${where}.data.value is missing`);
  switch (format as Format) {
    case 'string':
      if (typeof value !== 'string') throw bad(`${where}.data.value must be a string for format "string"`);
      if (!value.isWellFormed()) throw bad(`${where}.data.value contains a lone surrogate; send well-formed Unicode`);
      break;
    case 'base64':
    case 'key':
      if (typeof value !== 'string' || !BASE64.test(value))
        throw bad(`${where}.data.value must be base64 text (A-Z, a-z, 0-9, +, /, = padding) for format "${format}"`);
      break;
    case 'hex':
      if (typeof value !== 'string' || !HEX.test(value)) throw bad(`${where}.data.value must be an even number of hex digits for format "hex"`);
      break;
    case 'admin': {
      if (!isObject(value) || typeof value.permissions !== 'string' || !/^[01]{1,16}$/.test(value.permissions))
        throw bad(`${where}.data.value must be {"handle", "index", "permissions": "0/1 flags"} for format "admin"`);
      const ref = checkReference({ handle: value.handle, index: value.index }, `${where}.data.value`);
      const permissions = value.permissions.padEnd(ADMIN_PERMISSION_BITS, '0');
      return { format: 'admin', value: { handle: ref.handle, index: ref.index, permissions } };
    }
    case 'vlist':
      if (!Array.isArray(value)) throw bad(`${where}.data.value must be a list of {"handle", "index"} for format "vlist"`);
      return { format: 'vlist', value: value.map((r, i) => checkReference(r, `${where}.data.value[${i}]`)) };
    case 'site':
      if (!isObject(value)) throw bad(`${where}.data.value must be an object for format "site"`);
      break;
  }
  return { format: format as Format, value };
}

const VALUE_KEYS = new Set(['index', 'type', 'data', 'ttl', 'timestamp', 'permissions', 'references']);

/**
 * Validates one value; `where` names it in messages, e.g. `values[2]`. A client's value may
 * carry unknown fields (ignored, as Handle.Net ignores them, so a value read back can be
 * written as it is) and a decimal-string index; `strict` (another node's answer, relayed as
 * bytes) refuses both.
 */
export function checkValue(raw: unknown, where: string, strict = false): InputValue {
  if (!isObject(raw)) throw bad(`${where} must be an object {"index", "type", "data"}`);
  if (strict) {
    for (const k of Object.keys(raw)) if (!VALUE_KEYS.has(k)) throw bad(`${where} has an unknown field "${k}"`);
    if (typeof raw.index !== 'number') throw bad(`${where}.index must be an integer from 1 to ${MAX_INDEX}; got ${JSON.stringify(raw.index)}`);
  }
  const index = indexOf(raw.index);
  if (index === undefined)
    throw bad(`${where}.index must be an integer from 1 to ${MAX_INDEX} (a JSON number or a decimal string); got ${JSON.stringify(raw.index)}`);
  const type = raw.type;
  if (typeof type !== 'string' || type.length === 0 || type.length > MAX_TYPE_LENGTH || CONTROL.test(type) || !type.isWellFormed())
    throw bad(`${where}.type must be 1 to ${MAX_TYPE_LENGTH} printable characters, such as "URL" or "batch"`);
  const value: InputValue = { index, type, data: checkData(raw.data, where), ttl: DEFAULT_TTL };
  if (raw.ttl !== undefined) {
    const ttl = raw.ttl;
    const okNumber = typeof ttl === 'number' && Number.isInteger(ttl) && ttl >= 0 && ttl <= MAX_TTL;
    const okDate = typeof ttl === 'string' && ISO.test(ttl) && !Number.isNaN(Date.parse(ttl));
    if (!okNumber && !okDate) throw bad(`${where}.ttl must be seconds (0 to ${MAX_TTL}) or an ISO-8601 expiry time; got ${JSON.stringify(ttl)}`);
    value.ttl = ttl;
  }
  if (raw.timestamp !== undefined && typeof raw.timestamp !== 'string')
    throw bad(`${where}.timestamp must be a string (it is set by the server and may be left out)`);
  if (raw.permissions !== undefined) {
    if (typeof raw.permissions !== 'string' || !/^[01]{4}$/.test(raw.permissions))
      throw bad(`${where}.permissions must be 4 characters of 0/1 (adminRead adminWrite publicRead publicWrite), such as "1110"`);
    if (raw.permissions !== DEFAULT_PERMISSIONS) value.permissions = raw.permissions;
  }
  if (raw.references !== undefined) {
    if (!Array.isArray(raw.references)) throw bad(`${where}.references must be a list of {"handle", "index"}`);
    if (raw.references.length > 0) value.references = raw.references.map((r, i) => checkReference(r, `${where}.references[${i}]`));
  }
  return value;
}

/** True for a body that is one value rather than a record: it has no `values` but what a value has. */
function isBareValue(body: Record<string, unknown>): boolean {
  return body.values === undefined && (body.index !== undefined || body.type !== undefined || body.data !== undefined);
}

/**
 * Validates a write body as Handle.Net reads it: `{"values": [...]}` (other fields such as
 * `responseCode` ignored, so a GET answer can be sent back; a `"handle"` must name the same
 * identifier), a bare array of values, or a single value object. Indexes must be unique; at
 * most `valuesMax` values.
 */
export function parseValuesBody(body: unknown, opts: { valuesMax: number; handleKey?: string }): InputValue[] {
  let list: unknown = body;
  if (isObject(body)) {
    if (body.handle !== undefined && opts.handleKey !== undefined) {
      if (typeof body.handle !== 'string' || body.handle.toLowerCase() !== opts.handleKey.toLowerCase())
        throw bad(`the body names handle ${JSON.stringify(body.handle)} but the URL names ${opts.handleKey}; leave "handle" out or make them match`);
    }
    list = isBareValue(body) ? [body] : body.values;
  }
  if (!Array.isArray(list)) throw bad('the body must be {"values": [...]}, a JSON array of values or one value {"index", "type", "data"}');
  if (list.length === 0) throw bad('the body has no values; a record needs at least one (use DELETE to remove an identifier)');
  if (list.length > opts.valuesMax) throw bad(`the body has ${list.length} values; at most ${opts.valuesMax} are allowed (limits.valuesMax)`);
  const seen = new Set<number>();
  return list.map((raw, i) => {
    const v = checkValue(raw, `values[${i}]`);
    if (seen.has(v.index)) throw bad(`values[${i}].index ${v.index} appears more than once; indexes must be unique within a record`);
    seen.add(v.index);
    return v;
  });
}

/**
 * What is wrong with a value list another node answered with, or undefined: each value is
 * checked as a write checks it, and must also carry what every stored value has (a ttl and
 * an ISO-8601 timestamp). Pure and free of registry state, so the upstream client can take
 * it as an argument (src/upstream must not import src/registry).
 */
export function relayedValuesProblem(values: unknown[]): string | undefined {
  const seen = new Set<number>();
  for (let i = 0; i < values.length; i++) {
    const where = `values[${i}]`;
    const raw = values[i];
    // Checked before checkValue, whose message for a write says the timestamp may be left out.
    const ts = isObject(raw) ? raw.timestamp : undefined;
    if (ts !== undefined && (typeof ts !== 'string' || !ISO.test(ts) || Number.isNaN(Date.parse(ts))))
      return `${where}.timestamp must be an ISO-8601 time such as "2026-01-01T00:00:00Z"; got ${JSON.stringify(ts)}`;
    let v: InputValue;
    try {
      v = checkValue(raw, where, true);
    } catch (err) {
      return (err as Error).message;
    }
    if ((raw as Record<string, unknown>).ttl === undefined) return `${where}.ttl is missing`;
    if (ts === undefined) return `${where}.timestamp is missing`;
    if (seen.has(v.index)) return `${where}.index ${v.index} appears more than once; indexes must be unique within a record`;
    seen.add(v.index);
  }
  return undefined;
}

function sameContent(a: InputValue, b: InputValue): boolean {
  return (
    a.type === b.type &&
    a.ttl === b.ttl &&
    a.permissions === b.permissions &&
    JSON.stringify(a.data) === JSON.stringify(b.data) &&
    JSON.stringify(a.references) === JSON.stringify(b.references)
  );
}

/** Orders a value's properties as Handle.Net renders them and stamps its timestamp. */
function stamp(v: InputValue, timestamp: string): HandleValue {
  const out: HandleValue = { index: v.index, type: v.type, data: v.data, ttl: v.ttl, timestamp };
  if (v.permissions !== undefined) out.permissions = v.permissions;
  if (v.references !== undefined) out.references = v.references;
  return out;
}

/**
 * The new value list. Without `only`, `incoming` replaces the record (in the order sent); with
 * `only`, just those indexes are added or replaced, the rest kept, and the list comes back
 * ordered by index as Handle.Net re-sorts it. A value whose content did not change keeps its
 * timestamp.
 */
export function mergeValues(existing: HandleValue[], incoming: InputValue[], at: string, only?: Set<number>): HandleValue[] {
  // A new record (every line of a fresh bulk upload): nothing to keep a timestamp from.
  if (existing.length === 0 && only === undefined) return incoming.map((v) => stamp(v, at));
  const old = new Map(existing.map((v) => [v.index, v]));
  const stamped = (v: InputValue) => {
    const prev = old.get(v.index);
    return prev !== undefined && sameContent(prev, v) ? stamp(v, prev.timestamp) : stamp(v, at);
  };
  if (only === undefined) return incoming.map(stamped);
  const byIndex = new Map(incoming.filter((v) => only.has(v.index)).map((v) => [v.index, v]));
  const out = existing.map((v) => {
    const repl = byIndex.get(v.index);
    if (repl === undefined) return v;
    byIndex.delete(v.index);
    return stamped(repl);
  });
  for (const v of byIndex.values()) out.push(stamp(v, at));
  return out.sort((a, b) => a.index - b.index);
}

export function isPublic(v: HandleValue): boolean {
  return v.permissions === undefined || v.permissions[2] === '1';
}

/** Seconds a value may be cached: its ttl, or the time left until an absolute expiry. */
export function ttlSeconds(v: HandleValue, nowMs: number): number {
  if (typeof v.ttl === 'number') return v.ttl;
  return Math.max(0, Math.floor((Date.parse(v.ttl) - nowMs) / 1000));
}
