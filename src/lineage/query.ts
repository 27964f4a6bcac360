/**
 * What auditors ask (API.md §3.4): transitive lineage (one recursive CTE per direction),
 * every version of a record, the record as it was at a time, and the audit chain.
 */
import { IdnError } from '../errors.js';
import type { Identifier } from '../identifier/index.js';
import type { HandleValue } from '../registry/values.js';
import { type AuditRow, type AuditVerdict, type EdgeRow, isoSeconds, type Store } from '../store/index.js';
import type { Location } from './events.js';

export type Direction = 'up' | 'down' | 'both';

/** A node the reader may see: its identifier and where it lives. */
export interface LineageNode {
  handle: string;
  depth: number;
  location: Location;
}

/** A node outside the reader's scope: no identifier, only an id stable within one answer. */
export interface OpaqueNode {
  opaque: true;
  id: string;
  depth: number;
}

/** `from` and `to` are handles, or opaque ids; an edge between two opaque nodes says nothing else. */
export type LineageEdge =
  { from: string; to: string; type: string; since: string; until?: string; eventId: number } | { from: string; to: string; opaque: true };

export interface LineageAnswer {
  root: string;
  nodes: Array<LineageNode | OpaqueNode>;
  edges: LineageEdge[];
  truncated: boolean;
}

export interface LineageOptions {
  direction: Direction;
  depth: number;
  asOf: string;
  /**
   * The reader's scope, by prefix key (a scoped auditor). Identifiers outside it are answered
   * as opaque nodes; the walk goes on through them, so the graph keeps its shape, and what lies
   * beyond is named only where it is in scope itself.
   */
  inScope?: (prefixKey: string) => boolean;
}

export interface HistoryAnswer {
  handle: string;
  versions: Array<{ version: number; at: string; actor: string; action: string; values: HandleValue[] | null }>;
  /** Set when more versions follow: ask again with `after=<next>`. */
  next?: number;
}

export interface Auditing {
  lineage(id: Identifier, opts: LineageOptions): Promise<LineageAnswer>;
  history(id: Identifier, after: number, limit: number): Promise<HistoryAnswer>;
  /** The record as it was at `asOf` (ISO); IDN_NOT_FOUND before it existed or after its deletion. */
  asOf(id: Identifier, asOf: string): Promise<{ responseCode: 1; handle: string; values: HandleValue[] }>;
  audit(after: number, limit: number): Promise<{ entries: AuditRow[]; next: number | null }>;
  verify(): Promise<AuditVerdict>;
}

export function createAuditing(deps: { store: Store; maxNodes: number; isLocalPrefix: (prefixKey: string) => boolean }): Auditing {
  const { store } = deps;

  return {
    async lineage(id, { direction, depth, asOf, inScope }) {
      const cap = deps.maxNodes;
      // The walk yields a row per (identifier, depth, edge); a node reached on several paths
      // appears more than once, so allow a few rows per node before calling it truncated.
      // A cycle repeats its rows at every depth, so the bound grows with the depth asked for.
      const rowLimit = cap * Math.max(4, depth) + 1;
      const dirs: Array<'down' | 'up'> = direction === 'both' ? ['down', 'up'] : [direction];
      const depthOf = new Map<string, number>();
      const names = new Map<string, string>();
      const location = new Map<string, Location>();
      const edges = new Map<number, EdgeRow>();
      let truncated = false;
      const frontier = new Map<'down' | 'up', string[]>();
      for (const d of dirs) {
        const rows = await store.walk(id.key, d, depth, asOf, rowLimit);
        if (rows.length >= rowLimit) truncated = true;
        frontier.set(d, []);
        for (const r of rows) {
          if (r.more === 1) frontier.get(d)!.push(r.key);
          if (r.edgeId !== null)
            edges.set(r.edgeId, { id: r.edgeId, fromKey: r.fromKey!, toKey: r.toKey!, type: r.type!, since: r.since!, until: r.until, eventId: r.eventId! });
          const known = depthOf.get(r.key);
          if (known !== undefined && known <= r.depth) continue;
          depthOf.set(r.key, r.depth);
          if (known !== undefined) continue;
          names.set(r.key, r.recordHandle ?? (r.key === id.key ? id.text : (r.namedHandle ?? r.key)));
          location.set(r.key, !deps.isLocalPrefix(r.key.slice(0, r.key.indexOf('/'))) ? 'foreign' : r.recordHandle === null ? 'unknown' : 'local');
        }
      }
      let keys = [...depthOf.keys()].sort((a, b) => depthOf.get(a)! - depthOf.get(b)! || (a < b ? -1 : 1));
      if (keys.length > cap) {
        truncated = true;
        keys = keys.slice(0, cap);
      }
      const inSet = new Set(keys);
      // Edges leaving the deepest level were not walked: any to a node outside the answer
      // means the depth cap cut the lineage there.
      const edgeLimit = cap * 8;
      for (const d of dirs) {
        const from = frontier.get(d)!.filter((k) => inSet.has(k));
        if (from.length === 0) continue;
        const rows = await store.edgesAt(from, d, asOf, edgeLimit + 1);
        if (rows.length > edgeLimit) truncated = true;
        for (const e of rows) edges.set(e.id, e);
      }
      const kept: EdgeRow[] = [];
      for (const e of edges.values()) {
        if (inSet.has(e.fromKey) && inSet.has(e.toKey)) kept.push(e);
        else truncated = true;
      }
      // Out of scope: numbered in answer order (depth, then key), the same id on every edge.
      const label = new Map<string, string>();
      let opaque = 0;
      for (const k of keys) label.set(k, k === id.key || inScope === undefined || inScope(k.slice(0, k.indexOf('/'))) ? names.get(k)! : `opaque-${++opaque}`);
      const hidden = (k: string) => label.get(k) !== names.get(k);
      return {
        root: names.get(id.key)!,
        nodes: keys.map((k) =>
          hidden(k)
            ? { opaque: true as const, id: label.get(k)!, depth: depthOf.get(k)! }
            : { handle: names.get(k)!, depth: depthOf.get(k)!, location: location.get(k)! },
        ),
        edges: kept
          .sort((a, b) => a.id - b.id)
          .map((e) =>
            hidden(e.fromKey) && hidden(e.toKey)
              ? { from: label.get(e.fromKey)!, to: label.get(e.toKey)!, opaque: true as const }
              : {
                  from: label.get(e.fromKey)!,
                  to: label.get(e.toKey)!,
                  type: e.type,
                  since: e.since,
                  ...(e.until !== null ? { until: e.until } : {}),
                  eventId: e.eventId,
                },
          ),
        truncated,
      };
    },

    async history(id, after, limit) {
      const rows = await store.versions(id.key, after, limit + 1);
      if (rows.length === 0 && after === 0) throw new IdnError('IDN_NOT_FOUND', `${id.text} has no history on this node`, { handle: id.text });
      const page = rows.slice(0, limit);
      const answer: HistoryAnswer = {
        handle: (await store.getRecord(id.key))?.handle ?? rows.at(-1)?.handle ?? id.text,
        versions: page.map((r) => ({
          version: r.version,
          at: r.at,
          actor: r.actor,
          action: r.action,
          values: r.valuesJson === null ? null : (JSON.parse(r.valuesJson) as HandleValue[]),
        })),
      };
      if (rows.length > limit) answer.next = page.at(-1)!.version;
      return answer;
    },

    async asOf(id, asOf) {
      // Versions carry whole seconds: one written during the second asked about counts.
      const row = await store.versionAsOf(id.key, isoSeconds(new Date(asOf)));
      if (row === undefined) throw new IdnError('IDN_NOT_FOUND', `${id.text} did not exist at ${asOf}`, { handle: id.text });
      if (row.valuesJson === null) throw new IdnError('IDN_NOT_FOUND', `${row.handle} was deleted at ${row.at}, before ${asOf}`, { handle: row.handle });
      return { responseCode: 1, handle: row.handle, values: JSON.parse(row.valuesJson) as HandleValue[] };
    },

    async audit(after, limit) {
      const rows = await store.auditPage(after, limit + 1);
      const entries = rows.slice(0, limit);
      return { entries, next: rows.length > limit ? entries.at(-1)!.seq : null };
    },

    verify: () => store.verifyAudit(),
  };
}
