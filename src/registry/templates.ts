/**
 * Metadata templates (IDIS): versioned per prefix; a record under a prefix with templates
 * names its version at index 1001 (type TEMPLATE) and is checked against it on every write.
 * A version is immutable once a record uses it; items are disabled, never deleted. Values of
 * reference items are identifiers and become lineage edges typed by the item's name.
 */
import { RE2JS } from 're2js';
import { IdnError } from '../errors.js';
import { type Identifier, parseIdentifier, parsePrefix } from '../identifier/index.js';
import type { Store, TemplateRow, WriteTx } from '../store/index.js';
import type { InputValue } from './values.js';

export const TEMPLATE_INDEX = 1001;
export const TEMPLATE_TYPE = 'TEMPLATE';
export const FIRST_ITEM_INDEX = 2000;
export const DATA_TYPES = ['string', 'number', 'date', 'url', 'reference', 'file', 'image', 'audio', 'video'] as const;
type DataType = (typeof DATA_TYPES)[number];
const VERSION = /^[A-Za-z0-9._-]{1,32}$/;
/** Fields a GET answers that a PUT cannot set: accepted and ignored. */
const READ_ONLY = ['prefix', 'version', 'used', 'createdAt', 'updatedAt'];
const MAX_ITEMS = 500;

export interface TemplateItem {
  name: string;
  idIndex: number;
  idType: string;
  dataType: DataType;
  required: boolean;
  state: 'enabled' | 'disabled';
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  referenceType?: 'one' | 'many';
}

export interface Template {
  prefix: string;
  version: string;
  name?: string;
  industryCode?: string;
  items: TemplateItem[];
  used: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface Templates {
  put(prefix: string, version: string, body: unknown, actor: string): Promise<{ created: boolean; template: Template }>;
  get(prefix: string, version: string): Template;
  list(prefix: string): Template[];
  /**
   * Checks a record's final values; throws IDN_INVALID_VALUE naming index, item and problem.
   * Returns the template version they passed (undefined: the prefix has no templates).
   */
  check(id: Identifier, values: readonly InputValue[]): TemplateRow | undefined;
  /**
   * `check` again, for values with the same indexes, types and data in the same order as
   * values that passed `checked` (a bulk line's, now stamped): nothing to do while
   * that version is still the one they name.
   */
  recheck(id: Identifier, values: readonly InputValue[], checked: TemplateRow | undefined): void;
  /** Inside a record write: marks the version used and keeps reference edges in step. */
  apply(tx: WriteTx, id: Identifier, values: readonly InputValue[]): Promise<void>;
  /**
   * `apply` for many records of one write (a bulk chunk; each identifier once), set-based where
   * the engine can: one statement per kind of lineage row. The same rows, ids and first
   * spellings as `apply` record by record.
   */
  applyMany(tx: WriteTx, records: ReadonlyArray<{ id: Identifier; values: readonly InputValue[] }>): Promise<void>;
  /** Versions of a prefix (for export). */
  all(): Template[];
  /** Re-reads every template (the change feed named one). */
  reload(): Promise<void>;
}

const invalid = (m: string) => new IdnError('IDN_INVALID_VALUE', m);

function checkItem(raw: unknown, i: number): TemplateItem {
  const where = `items[${i}]`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid(`${where} must be an object {"name","idIndex","idType","dataType",…}`);
  const r = raw as Record<string, unknown>;
  const allowed = ['name', 'idIndex', 'idType', 'dataType', 'required', 'state', 'minLength', 'maxLength', 'pattern', 'referenceType'];
  for (const k of Object.keys(r)) if (!allowed.includes(k)) throw invalid(`${where} has an unknown field "${k}"; allowed: ${allowed.join(', ')}`);
  if (typeof r.name !== 'string' || r.name.length < 1 || r.name.length > 64) throw invalid(`${where}.name must be 1 to 64 characters`);
  if (!Number.isInteger(r.idIndex) || (r.idIndex as number) < FIRST_ITEM_INDEX || (r.idIndex as number) > 4294967295)
    throw invalid(`${where}.idIndex must be an integer from ${FIRST_ITEM_INDEX} (template items start there) to 4294967295`);
  if (typeof r.idType !== 'string' || r.idType.length < 1 || r.idType.length > 64) throw invalid(`${where}.idType must be the value type, 1 to 64 characters`);
  if (!(DATA_TYPES as readonly unknown[]).includes(r.dataType)) throw invalid(`${where}.dataType must be one of ${DATA_TYPES.join(', ')}`);
  if (r.required !== undefined && typeof r.required !== 'boolean') throw invalid(`${where}.required must be true or false`);
  if (r.state !== undefined && r.state !== 'enabled' && r.state !== 'disabled') throw invalid(`${where}.state must be "enabled" or "disabled"`);
  for (const k of ['minLength', 'maxLength'])
    if (r[k] !== undefined && (!Number.isInteger(r[k]) || (r[k] as number) < 0 || (r[k] as number) > 1_000_000))
      throw invalid(`${where}.${k} must be a whole number`);
  if (r.minLength !== undefined && r.maxLength !== undefined && (r.minLength as number) > (r.maxLength as number))
    throw invalid(`${where}.minLength must not exceed maxLength`);
  if (r.pattern !== undefined) {
    if (typeof r.pattern !== 'string' || r.pattern.length > 256) throw invalid(`${where}.pattern must be a regular expression of at most 256 characters`);
    const why = patternProblem(r.pattern, r.name);
    if (why !== undefined) throw invalid(`${where}.${why}`);
  }
  if (r.referenceType !== undefined && (r.dataType !== 'reference' || (r.referenceType !== 'one' && r.referenceType !== 'many')))
    throw invalid(`${where}.referenceType is "one" or "many", for dataType reference only`);
  const item: TemplateItem = {
    name: r.name,
    idIndex: r.idIndex as number,
    idType: r.idType,
    dataType: r.dataType as DataType,
    required: r.required === true,
    state: (r.state as TemplateItem['state']) ?? 'enabled',
  };
  if (r.minLength !== undefined) item.minLength = r.minLength as number;
  if (r.maxLength !== undefined) item.maxLength = r.maxLength as number;
  if (r.pattern !== undefined) item.pattern = r.pattern;
  if (item.dataType === 'reference') item.referenceType = r.referenceType ?? 'one';
  return item;
}

/** Why RE2 cannot run a pattern (backreferences, lookaround, bad syntax), or undefined. */
function patternProblem(source: string, name: string): string | undefined {
  try {
    RE2JS.compile(source);
    return undefined;
  } catch (err) {
    const msg = (err as Error).message;
    const rule = 'patterns run in linear time (RE2 syntax)';
    if (/\\[1-9]|\\k</.test(source) && /escape/.test(msg)) return `pattern of item ${name} uses a backreference; ${rule}`;
    if (/\(\?<?[=!]/.test(source)) return `pattern of item ${name} uses lookaround ((?=, (?!, (?<=, (?<!); ${rule}`;
    return `pattern is not a valid regular expression (item ${name}): ${msg}; ${rule}`;
  }
}

// Patterns run on every write: RE2 matches in time linear in the value, so no pattern can stall the node.
const patterns = new Map<string, RE2JS | string>();
/** The compiled pattern, or why it cannot run (a template stored by an older version with a JS-only pattern). */
function patternOf(source: string): RE2JS | string {
  let re = patterns.get(source);
  if (re === undefined) {
    try {
      re = RE2JS.compile(source);
    } catch {
      re = 'cannot run: RE2 (linear-time) syntax does not support it';
    }
    if (patterns.size < 10_000) patterns.set(source, re);
  }
  return re;
}

function isUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

// A write checks a reference value, then applies it as lineage: parsed once, kept for the next look (parsing is pure).
const parsedRefs = { one: new Map<string, readonly Identifier[]>(), many: new Map<string, readonly Identifier[]>() };
const parsedRefsMax = 10_000;

/** Identifiers a reference value names: one, or a comma-separated list for referenceType many (shared: never mutate). */
function referenced(item: TemplateItem, text: string): readonly Identifier[] {
  const many = item.referenceType === 'many';
  const cache = many ? parsedRefs.many : parsedRefs.one;
  let ids = cache.get(text);
  if (ids !== undefined) return ids;
  const parts = many
    ? text
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '')
    : [text];
  ids = parts.map((p) => parseIdentifier(p));
  if (cache.size >= parsedRefsMax) cache.clear();
  cache.set(text, ids);
  return ids;
}

/** The problem with one value under its item, or undefined. */
function valueProblem(item: TemplateItem, v: InputValue): string | undefined {
  if (v.type !== item.idType) return `type must be "${item.idType}", got "${v.type}"`;
  if (v.data.format !== 'string' || typeof v.data.value !== 'string') return 'data must be a string value';
  const text = v.data.value;
  if (item.minLength !== undefined && text.length < item.minLength) return `is ${text.length} characters; at least ${item.minLength} are required`;
  if (item.maxLength !== undefined && text.length > item.maxLength) return `is ${text.length} characters; at most ${item.maxLength} are allowed`;
  if (item.pattern !== undefined) {
    const re = patternOf(item.pattern);
    if (typeof re === 'string') return `cannot be checked: the pattern ${item.pattern} ${re}; PUT a new template version with an RE2 pattern`;
    if (!re.matcher(text).find()) return `"${text}" does not match the pattern ${item.pattern}`;
  }
  switch (item.dataType) {
    case 'number':
      return /^-?\d+(\.\d+)?$/.test(text) ? undefined : `"${text}" is not a number`;
    case 'date':
      return /^\d{4}-\d\d-\d\d(T\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d))?$/.test(text) && !Number.isNaN(Date.parse(text))
        ? undefined
        : `"${text}" is not a date (YYYY-MM-DD or ISO-8601 with a zone)`;
    case 'url':
    case 'file':
    case 'image':
    case 'audio':
    case 'video':
      return isUrl(text) ? undefined : `"${text}" is not an http(s) URL`;
    case 'reference': {
      let ids: readonly Identifier[];
      try {
        ids = referenced(item, text);
      } catch (err) {
        return `names an invalid identifier: ${(err as Error).message}`;
      }
      if (ids.length === 0) return 'names no identifier';
      if (item.referenceType === 'one' && text.includes(',')) return 'must name one identifier (referenceType one)';
      return undefined;
    }
    default:
      return undefined;
  }
}

/** The reference items of a template and the identifiers each names in `values` (none when disabled or absent). */
function references(items: readonly TemplateItem[], values: readonly InputValue[]): Array<{ item: TemplateItem; wanted: Map<string, string> }> {
  const out: Array<{ item: TemplateItem; wanted: Map<string, string> }> = [];
  for (const item of items) {
    if (item.dataType !== 'reference') continue;
    const v = values.find((x) => x.index === item.idIndex);
    const wanted = new Map<string, string>();
    if (v !== undefined && item.state === 'enabled') for (const ref of referenced(item, v.data.value as string)) wanted.set(ref.key, ref.text);
    out.push({ item, wanted });
  }
  return out;
}

function shape(row: TemplateRow): Template {
  const body = JSON.parse(row.bodyJson) as { name?: string; industryCode?: string; items: TemplateItem[] };
  return { prefix: row.prefix, version: row.version, ...body, used: row.used === 1, createdAt: row.createdAt, updatedAt: row.updatedAt };
}

export async function createTemplates(deps: { store: Store }): Promise<Templates> {
  const { store } = deps;
  /** prefixKey → version → row, loaded once and kept in step by the change feed (every process's writes, this one's included). */
  const byPrefix = new Map<string, Map<string, TemplateRow>>();
  async function load(): Promise<void> {
    const rows = await store.allTemplates();
    byPrefix.clear();
    for (const row of rows) {
      if (!byPrefix.has(row.prefixKey)) byPrefix.set(row.prefixKey, new Map());
      byPrefix.get(row.prefixKey)!.set(row.version, row);
    }
  }

  await load();

  function parse(prefix: string): { prefix: string; key: string } {
    try {
      return parsePrefix(prefix);
    } catch (err) {
      throw new IdnError('IDN_BAD_REQUEST', `prefix: ${(err as Error).message}`);
    }
  }

  /** Parsed items and compiled patterns per stored row (rows are replaced, never mutated, on change). */
  const compiled = new WeakMap<TemplateRow, { items: TemplateItem[]; byIndex: Map<number, TemplateItem> }>();
  function itemsOf(row: TemplateRow): { items: TemplateItem[]; byIndex: Map<number, TemplateItem> } {
    let c = compiled.get(row);
    if (c === undefined) {
      const items = (JSON.parse(row.bodyJson) as { items: TemplateItem[] }).items;
      c = { items, byIndex: new Map(items.map((it) => [it.idIndex, it])) };
      compiled.set(row, c);
    }
    return c;
  }

  function versionOf(
    id: Identifier,
    values: readonly InputValue[],
  ): { row: TemplateRow; items: TemplateItem[]; byIndex: Map<number, TemplateItem> } | undefined {
    const versions = byPrefix.get(id.prefixKey);
    if (versions === undefined || versions.size === 0) return undefined;
    const tv = values.find((v) => v.index === TEMPLATE_INDEX);
    const known = () => [...versions.keys()].join(', ');
    if (tv === undefined)
      throw invalid(
        `prefix ${id.prefix} uses metadata templates (versions ${known()}): add {"index": ${TEMPLATE_INDEX}, "type": "${TEMPLATE_TYPE}", "data": "<version>"}`,
      );
    if (tv.type !== TEMPLATE_TYPE || tv.data.format !== 'string' || typeof tv.data.value !== 'string')
      throw invalid(
        `index ${TEMPLATE_INDEX} is reserved for the template version: type "${TEMPLATE_TYPE}", data a version string such as "${[...versions.keys()][0]}"`,
      );
    const row = versions.get(tv.data.value);
    if (row === undefined)
      throw invalid(`index ${TEMPLATE_INDEX} names template version "${tv.data.value}", which prefix ${id.prefix} does not have (it has ${known()})`);
    return { row, ...itemsOf(row) };
  }

  /** The template version a record's values name, when they name one well-formed. */
  function versionNamed(values: readonly InputValue[]): string | undefined {
    const tv = values.find((v) => v.index === TEMPLATE_INDEX);
    return tv?.type === TEMPLATE_TYPE && tv.data.format === 'string' && typeof tv.data.value === 'string' ? tv.data.value : undefined;
  }

  function check(id: Identifier, values: readonly InputValue[]): TemplateRow | undefined {
    const t = versionOf(id, values);
    if (t === undefined) return undefined;
    const byIndex = t.byIndex;
    for (const v of values) {
      if (v.index < FIRST_ITEM_INDEX) continue;
      const item = byIndex.get(v.index);
      if (item === undefined) throw invalid(`index ${v.index} is not an item of template ${t.row.version} of prefix ${id.prefix}`);
      if (item.state === 'disabled') continue;
      const problem = valueProblem(item, v);
      if (problem !== undefined) throw invalid(`index ${v.index} (item "${item.name}", template ${t.row.version}): ${problem}`);
    }
    const present = new Set(values.map((v) => v.index));
    for (const item of t.items)
      if (item.required && item.state === 'enabled' && !present.has(item.idIndex))
        throw invalid(`index ${item.idIndex} (item "${item.name}", template ${t.row.version}) is required and missing`);
    return t.row;
  }

  async function apply(tx: WriteTx, id: Identifier, values: readonly InputValue[]): Promise<void> {
    const t = versionOf(id, values);
    if (t === undefined) return;
    // Recorded in the feed; every process reloads its templates after the commit.
    if (t.row.used === 0) await tx.markTemplateUsed(id.prefixKey, t.row.version);
    const since = new Date(Date.parse(tx.at)).toISOString();
    for (const { item, wanted } of references(t.items, values)) {
      for (const key of await tx.openChildren(id.key, item.name)) if (!wanted.has(key)) await tx.closeEdge(id.key, key, item.name, since, 0);
      for (const [key, text] of wanted) {
        await tx.nameIdentifier(key, text);
        await tx.openEdge(id.key, key, item.name, since, 0);
      }
    }
    await tx.nameIdentifier(id.key, id.text);
  }

  return {
    async put(prefix, version, body, actor) {
      const p = parse(prefix);
      if (!VERSION.test(version)) throw new IdnError('IDN_BAD_REQUEST', 'a template version is 1 to 32 letters, digits, ".", "_" or "-", such as "1.0"');
      if (typeof body !== 'object' || body === null || Array.isArray(body))
        throw invalid('the body must be {"items": [...]} (optionally "name" and "industryCode")');
      const b = body as Record<string, unknown>;
      // The read-only fields of a GET answer may come back with it (GET → edit → PUT); a typo is still refused.
      for (const k of Object.keys(b))
        if (!['items', 'name', 'industryCode', ...READ_ONLY].includes(k)) throw invalid(`unknown field "${k}"; allowed: items, name, industryCode`);
      for (const [k, want] of [
        ['prefix', prefix],
        ['version', version],
      ] as const)
        if (b[k] !== undefined && (typeof b[k] !== 'string' || b[k].toLowerCase() !== want.toLowerCase()))
          throw invalid(`the body names ${k} ${JSON.stringify(b[k])} but the URL names ${want}; leave "${k}" out or make them match`);
      for (const k of ['name', 'industryCode'])
        if (b[k] !== undefined && (typeof b[k] !== 'string' || b[k].length > 200)) throw invalid(`${k} must be a string of at most 200 characters`);
      if (!Array.isArray(b.items) || b.items.length === 0 || b.items.length > MAX_ITEMS)
        throw invalid(`items must be a list of 1 to ${MAX_ITEMS} template items`);
      const items = b.items.map(checkItem);
      const names = new Set<string>();
      const indexes = new Set<number>();
      for (const it of items) {
        if (names.has(it.name)) throw invalid(`item name "${it.name}" appears twice`);
        if (indexes.has(it.idIndex)) throw invalid(`idIndex ${it.idIndex} appears twice`);
        names.add(it.name);
        indexes.add(it.idIndex);
      }
      const versions = byPrefix.get(p.key) ?? new Map<string, TemplateRow>();
      const existing = versions.get(version);
      if (existing?.used === 1)
        throw new IdnError('IDN_TEMPLATE_IN_USE', `template ${p.prefix} version ${version} is used by records and cannot change; PUT a new version`);
      // Items are disabled, never deleted: every item of this version (or of the newest
      // other version, for a new one) must still be there.
      const before = existing ?? [...versions.values()].sort((x, y) => (x.createdAt < y.createdAt ? -1 : 1)).at(-1);
      if (before !== undefined)
        for (const old of (JSON.parse(before.bodyJson) as { items: TemplateItem[] }).items)
          if (!indexes.has(old.idIndex))
            throw invalid(
              `item "${old.name}" (idIndex ${old.idIndex}) of version ${before.version} is missing; items are never deleted: keep it with "state": "disabled"`,
            );
      const doc = JSON.stringify({
        ...(b.name !== undefined ? { name: b.name } : {}),
        ...(b.industryCode !== undefined ? { industryCode: b.industryCode } : {}),
        items,
      });
      const row = await store.write({ actor, action: existing ? 'template.update' : 'template.create', target: `${p.prefix}@${version}` }, async (tx) => {
        const row: TemplateRow = {
          prefixKey: p.key,
          version,
          prefix: p.prefix,
          bodyJson: doc,
          used: 0,
          createdAt: existing?.createdAt ?? tx.at,
          updatedAt: tx.at,
        };
        await tx.putTemplate(row);
        return { result: row, payload: `${p.prefix}@${version}\n${doc}`, keepPayload: true };
      });
      return { created: existing === undefined, template: shape(row) };
    },

    get(prefix, version) {
      const row = byPrefix.get(parse(prefix).key)?.get(version);
      if (row === undefined)
        throw new IdnError('IDN_TEMPLATE_NOT_FOUND', `prefix ${prefix} has no template version ${version}; list them with GET /api/templates/${prefix}`);
      return shape(row);
    },

    list(prefix) {
      return [...(byPrefix.get(parse(prefix).key)?.values() ?? [])].map(shape);
    },

    check,

    recheck(id, values, checked) {
      // Rows are replaced, never mutated: the same row is the same items and patterns.
      if (checked !== undefined && byPrefix.get(id.prefixKey)?.get(versionNamed(values) ?? '') === checked) return;
      check(id, values);
    },
    apply,

    async applyMany(tx, records) {
      const keys = new Set(records.map((r) => r.id.key));
      if (tx.openChildrenMany === undefined || tx.openEdges === undefined || tx.nameIdentifiers === undefined || keys.size < records.length) {
        for (const r of records) await apply(tx, r.id, r.values);
        return;
      }
      const since = new Date(Date.parse(tx.at)).toISOString();
      const marks = new Map<string, [string, string]>();
      const refs: Array<{ id: Identifier; item: TemplateItem; wanted: Map<string, string> }> = [];
      // The order `apply` one record after another would write them in (first spellings, edge ids).
      const names: Array<[string, string]> = [];
      const opens: Array<[string, string, string, string, number]> = [];
      for (const { id, values } of records) {
        const t = versionOf(id, values);
        if (t === undefined) continue;
        if (t.row.used === 0) marks.set(`${id.prefixKey}@${t.row.version}`, [id.prefixKey, t.row.version]);
        for (const { item, wanted } of references(t.items, values)) {
          refs.push({ id, item, wanted });
          for (const [key, text] of wanted) {
            names.push([key, text]);
            opens.push([id.key, key, item.name, since, 0]);
          }
        }
        names.push([id.key, id.text]);
      }
      for (const [prefixKey, version] of marks.values()) await tx.markTemplateUsed(prefixKey, version);
      // Each record's edges leave its own key (once per chunk): closing one never changes another's.
      const children = refs.length === 0 ? [] : await tx.openChildrenMany(refs.map((r) => [r.id.key, r.item.name] as const));
      for (let i = 0; i < refs.length; i++) {
        const { id, item, wanted } = refs[i]!;
        for (const key of children[i]!) if (!wanted.has(key)) await tx.closeEdge(id.key, key, item.name, since, 0);
      }
      await Promise.all([tx.nameIdentifiers(names), opens.length > 0 ? tx.openEdges(opens) : undefined]);
    },

    all() {
      return [...byPrefix.values()].flatMap((m) => [...m.values()]).map(shape);
    },

    reload: load,
  };
}
