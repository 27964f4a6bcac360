/**
 * Lineage events (EPCIS-style, API.md §3.4): validated, written append-only through the
 * store's one write path, and turned into edges that point from the whole to its part
 * (aggregation parent → child, transformation output → input).
 */
import { IdnError } from '../errors.js';
import { type Identifier, parseIdentifier } from '../identifier/index.js';
import type { Store, WriteTx } from '../store/index.js';
import type { Router } from '../upstream/routing.js';

export const AGGREGATION_ACTIONS = ['ADD', 'OBSERVE', 'DELETE'] as const;
type Action = (typeof AGGREGATION_ACTIONS)[number];

export type Location = 'local' | 'foreign' | 'unknown';

/** An event after validation: identifiers parsed, times normalised to ISO-8601 UTC with ms. */
export type LineageEvent =
  | { type: 'aggregation'; action: Action; parent: Identifier; children: Identifier[]; eventTime: string; extra: Record<string, unknown> }
  | { type: 'transformation'; inputs: Identifier[]; outputs: Identifier[]; eventTime: string; extra: Record<string, unknown> };

export interface PostedEvent {
  responseCode: 1;
  eventId: number;
  recordTime: string;
  edgesOpened: number;
  edgesClosed: number;
  /** Identifiers that are not local records: foreign (another node's prefix) or unknown (homed here, not registered). */
  flags: Array<{ handle: string; location: Exclude<Location, 'local'> }>;
  /** DELETE children that had no open edge to close. */
  unmatched?: string[];
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d:\d\d)$/;

/** An ISO-8601 time with a zone (Z or ±hh:mm) → `YYYY-MM-DDTHH:MM:SS.sssZ`; `field` names it in errors. */
export function parseTime(raw: unknown, field: string, code: 'IDN_INVALID_VALUE' | 'IDN_BAD_REQUEST' = 'IDN_INVALID_VALUE'): string {
  const ms = typeof raw === 'string' && ISO.test(raw) ? Date.parse(raw) : NaN;
  if (!Number.isFinite(ms) || ms < 0 || ms >= Date.UTC(10000, 0))
    throw new IdnError(code, `${field} must be an ISO-8601 time with a zone between 1970 and 9999, such as 2026-03-01T08:00:00Z; got ${JSON.stringify(raw)}`);
  return new Date(ms).toISOString();
}

function identifierList(raw: unknown, field: string, max: number, allowEmpty: boolean): Identifier[] {
  if (!Array.isArray(raw)) throw new IdnError('IDN_INVALID_VALUE', `${field} must be a list of identifiers such as ["88.100.7/PART-1"]`);
  if (raw.length === 0 && !allowEmpty) throw new IdnError('IDN_INVALID_VALUE', `${field} must name at least one identifier`);
  if (raw.length > max)
    throw new IdnError(
      'IDN_INVALID_VALUE',
      `${field} has ${raw.length} identifiers; at most ${max} are allowed in one event (config lineage.eventItemsMax); split it into several events`,
    );
  const seen = new Map<string, Identifier>();
  raw.forEach((text, i) => {
    const id = eventIdentifier(text, `${field}[${i}]`);
    if (!seen.has(id.key)) seen.set(id.key, id);
  });
  return [...seen.values()];
}

function eventIdentifier(raw: unknown, field: string): Identifier {
  let id: Identifier;
  try {
    id = parseIdentifier(raw);
  } catch (err) {
    throw new IdnError('IDN_INVALID_VALUE', `${field}: ${(err as Error).message}`);
  }
  if (id.namedPrefixKey !== undefined)
    throw new IdnError('IDN_INVALID_VALUE', `${field}: ${id.text} is a prefix handle; events name products, parts and batches`);
  return id;
}

const COMMON = new Set(['type', 'eventTime', 'eventID', 'bizStep', 'readPoint', 'bizLocation', 'transformationID', 'disposition']);

/** Checks a posted body and returns the normalised event; every error names the field. */
export function parseEvent(body: unknown, itemsMax: number): LineageEvent {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new IdnError('IDN_INVALID_VALUE', 'the body must be an event object: {"type":"aggregation"|"transformation", …, "eventTime"}');
  const b = body as Record<string, unknown>;
  const allowed = b.type === 'aggregation' ? ['action', 'parent', 'children'] : b.type === 'transformation' ? ['inputs', 'outputs'] : undefined;
  if (allowed === undefined) throw new IdnError('IDN_INVALID_VALUE', `type must be "aggregation" or "transformation"; got ${JSON.stringify(b.type)}`);
  for (const k of Object.keys(b))
    if (!COMMON.has(k) && !allowed.includes(k))
      throw new IdnError('IDN_INVALID_VALUE', `unknown field "${k}" in a ${String(b.type)} event; allowed: ${[...allowed, ...COMMON].join(', ')}`);
  const eventTime = parseTime(b.eventTime, 'eventTime');
  const extra: Record<string, unknown> = {};
  for (const k of ['eventID', 'bizStep', 'readPoint', 'bizLocation', 'transformationID', 'disposition']) {
    if (b[k] === undefined) continue;
    if (typeof b[k] !== 'string' || b[k].length > 1024) throw new IdnError('IDN_INVALID_VALUE', `${k} must be a string of at most 1024 characters`);
    extra[k] = b[k];
  }
  if (b.type === 'aggregation') {
    if (!(AGGREGATION_ACTIONS as readonly unknown[]).includes(b.action))
      throw new IdnError('IDN_INVALID_VALUE', `action must be one of ${AGGREGATION_ACTIONS.join(', ')}; got ${JSON.stringify(b.action)}`);
    const action = b.action as Action;
    const parent = eventIdentifier(b.parent, 'parent');
    // EPCIS: a DELETE with no children unpacks everything the parent holds.
    const children = identifierList(b.children ?? (action === 'DELETE' ? [] : undefined), 'children', itemsMax, action === 'DELETE');
    if (children.some((c) => c.key === parent.key)) throw new IdnError('IDN_INVALID_VALUE', `children: ${parent.text} cannot contain itself`);
    return { type: 'aggregation', action, parent, children, eventTime, extra };
  }
  const inputs = identifierList(b.inputs, 'inputs', itemsMax, false);
  const outputs = identifierList(b.outputs, 'outputs', itemsMax, false);
  if (inputs.length + outputs.length > itemsMax)
    throw new IdnError(
      'IDN_INVALID_VALUE',
      `inputs and outputs name ${inputs.length + outputs.length} identifiers; at most ${itemsMax} are allowed in one event (config lineage.eventItemsMax)`,
    );
  const outKeys = new Set(outputs.map((o) => o.key));
  const both = inputs.find((i) => outKeys.has(i.key));
  if (both !== undefined) throw new IdnError('IDN_INVALID_VALUE', `${both.text} is both an input and an output; a transformation makes something new`);
  return { type: 'transformation', inputs, outputs, eventTime, extra };
}

/** Every identifier an event names. */
export function eventIdentifiers(ev: LineageEvent): Identifier[] {
  return ev.type === 'aggregation' ? [ev.parent, ...ev.children] : [...ev.outputs, ...ev.inputs];
}

/** The canonical JSON of an event: what is stored and what the audit digest covers. */
export function canonicalEvent(ev: LineageEvent): string {
  if (ev.type === 'aggregation')
    return JSON.stringify({
      type: ev.type,
      action: ev.action,
      parent: ev.parent.text,
      children: ev.children.map((c) => c.text),
      eventTime: ev.eventTime,
      ...ev.extra,
    });
  return JSON.stringify({ type: ev.type, inputs: ev.inputs.map((c) => c.text), outputs: ev.outputs.map((c) => c.text), eventTime: ev.eventTime, ...ev.extra });
}

/** Applies an event inside a write: the event row, its edges, the names it uses. */
export async function applyEvent(
  tx: WriteTx,
  ev: LineageEvent,
  bodyJson: string,
): Promise<{ eventId: number; opened: number; closed: number; unmatched: string[] }> {
  const eventId = await tx.insertEvent({ type: ev.type, action: ev.type === 'aggregation' ? ev.action : null, eventTime: ev.eventTime, bodyJson });
  for (const id of eventIdentifiers(ev)) await tx.nameIdentifier(id.key, id.text);
  let opened = 0;
  let closed = 0;
  const unmatched: string[] = [];
  if (ev.type === 'aggregation') {
    if (ev.action === 'DELETE') {
      const keys =
        ev.children.length > 0
          ? ev.children.map((c) => [c.key, c.text] as const)
          : (await tx.openChildren(ev.parent.key, 'aggregation')).map((k) => [k, k] as const);
      for (const [key, text] of keys) {
        if (await tx.closeEdge(ev.parent.key, key, 'aggregation', ev.eventTime, eventId)) closed++;
        else unmatched.push(text);
      }
    } else {
      // OBSERVE of a packed child that has no open edge is evidence it is there: open one.
      for (const c of ev.children) if (await tx.openEdge(ev.parent.key, c.key, 'aggregation', ev.eventTime, eventId)) opened++;
    }
  } else {
    for (const o of ev.outputs) for (const i of ev.inputs) if (await tx.openEdge(o.key, i.key, 'transformation', ev.eventTime, eventId)) opened++;
  }
  return { eventId, opened, closed, unmatched };
}

export interface Events {
  /** Validates and stores one event; `authorize` sees every identifier first (scope check). */
  post(body: unknown, actor: string, authorize: (ids: Identifier[], local: (id: Identifier) => boolean) => void): Promise<PostedEvent>;
  /** Where an identifier lives, from this node's point of view. */
  locate(key: string): Promise<Location>;
}

export function createEvents(deps: { store: Store; router: Router; itemsMax: number }): Events {
  const { store, router } = deps;
  const isLocal = (id: { prefixKey: string }) => router.route(id.prefixKey).kind === 'local';

  /** `reader`: the write transaction, when asked inside one (it sees what the write did). */
  async function locate(key: string, reader: Pick<Store, 'getRecord'> = store): Promise<Location> {
    const slash = key.indexOf('/');
    if (router.route(slash < 0 ? key : key.slice(0, slash)).kind !== 'local') return 'foreign';
    return (await reader.getRecord(key)) === undefined ? 'unknown' : 'local';
  }

  return {
    locate: (key) => locate(key),
    async post(body, actor, authorize) {
      const ev = parseEvent(body, deps.itemsMax);
      const ids = eventIdentifiers(ev);
      authorize(ids, isLocal);
      const bodyJson = canonicalEvent(ev);
      const target = ev.type === 'aggregation' ? ev.parent.text : ev.outputs[0]!.text;
      return store.write({ actor, action: `event.${ev.type}`, target }, async (tx) => {
        const { eventId, opened, closed, unmatched } = await applyEvent(tx, ev, bodyJson);
        const flags: PostedEvent['flags'] = [];
        for (const id of ids) {
          const location = await locate(id.key, tx);
          if (location !== 'local') flags.push({ handle: id.text, location });
        }
        const result: PostedEvent = { responseCode: 1, eventId, recordTime: tx.at, edgesOpened: opened, edgesClosed: closed, flags };
        if (unmatched.length > 0) result.unmatched = unmatched;
        return { result, payload: bodyJson, keepPayload: true };
      });
    },
  };
}
