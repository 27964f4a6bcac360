/** Lineage: events, the edges they open and close, identifiers' first spellings, walks. */
import type { EdgeRow, EventRow, LineageReads, WalkRow } from '../types.js';
import type { Q } from './db.js';

/**
 * The lineage walk one way: from `self` along edges to `next`, one row per (identifier, depth,
 * edge). PostgreSQL refuses LIMIT inside the recursive part; on the outer scan it stops the
 * recursion as early, since the CTE is evaluated only as far as it is read (breadth first);
 * the joins would reorder the rows, so they keep the walk's order by number.
 */
const walkSql = (self: string, next: string) =>
  `WITH RECURSIVE walk(key, depth, edge) AS (
     SELECT $1::text COLLATE "C", 0, NULL::bigint
     UNION
     SELECT e.${next}, w.depth + 1, e.id FROM walk w JOIN edges e ON e.${self} = w.key
     WHERE w.depth < $2 AND e.since <= $3 AND (e.until IS NULL OR e.until > $3)),
   limited AS (SELECT walk.*, row_number() OVER () AS n FROM walk LIMIT $4)
   SELECT w.key, w.depth, r.handle AS "recordHandle",
     CASE WHEN r.handle IS NULL THEN (SELECT handle FROM lineage_names n WHERE n.key = w.key) END AS "namedHandle",
     (CASE WHEN w.depth = $2 THEN EXISTS (SELECT 1 FROM edges x WHERE x.${self} = w.key AND x.since <= $3
       AND (x.until IS NULL OR x.until > $3)) ELSE false END)::int AS more,
     e.id AS "edgeId", e.from_key AS "fromKey", e.to_key AS "toKey", e.type, e.since, e.until, e.event_id AS "eventId"
   FROM limited w LEFT JOIN records r ON r.handle_key = w.key LEFT JOIN edges e ON e.id = w.edge
   ORDER BY w.n`;

const WALK = { down: walkSql('from_key', 'to_key'), up: walkSql('to_key', 'from_key') };
const EDGES = {
  down: 'from_key',
  up: 'to_key',
};

export function lineageReads(q: Q): LineageReads {
  return {
    walk: async (rootKey, direction, maxDepth, asOf, rowLimit) => [
      ...(await q.unsafe<WalkRow[]>(WALK[direction], [rootKey, maxDepth, asOf, rowLimit], { prepare: true })),
    ],
    edgesAt: async (keys, direction, asOf, limit) => [
      ...(await q.unsafe<EdgeRow[]>(
        `SELECT id, from_key AS "fromKey", to_key AS "toKey", type, since, until, event_id AS "eventId" FROM edges
         WHERE ${EDGES[direction]} = ANY($1::text[]) AND since <= $2 AND (until IS NULL OR until > $2) LIMIT $3`,
        [keys, asOf, limit],
        { prepare: true },
      )),
    ],
  };
}

/** Ids are max(id) + 1 under the chain head's lock, as SQLite's rowids are. */
export const lineageWrites = {
  async insertEvent(q: Q, r: EventRow, at: string, actor: string, seq: number): Promise<number> {
    const [row] = await q`INSERT INTO events (id, type, action, event_time, record_time, actor, body_json, audit_seq)
      SELECT coalesce(max(id), 0) + 1, ${r.type}, ${r.action}, ${r.eventTime}, ${at}, ${actor}, ${r.bodyJson}, ${seq} FROM events RETURNING id`.values();
    return row![0] as number;
  },
  /** The new edge's id; 0 when an open edge from→to (same type) already exists. */
  async openEdge(q: Q, fromKey: string, toKey: string, type: string, since: string, eventId: number): Promise<number> {
    const open = await q`SELECT 1 FROM edges WHERE from_key = ${fromKey} AND to_key = ${toKey} AND type = ${type} AND until IS NULL LIMIT 1`;
    if (open.length > 0) return 0;
    const [row] = await q`INSERT INTO edges (id, from_key, to_key, type, since, until, event_id)
      SELECT coalesce(max(id), 0) + 1, ${fromKey}, ${toKey}, ${type}, ${since}, NULL, ${eventId} FROM edges RETURNING id`.values();
    return row![0] as number;
  },
  /** The closed edge's id; 0 when there is none to close. */
  async closeEdge(q: Q, fromKey: string, toKey: string, type: string, until: string, eventId: number): Promise<number> {
    const [row] = await q`UPDATE edges SET until = ${until}, until_event = ${eventId} WHERE id = (SELECT id FROM edges WHERE from_key = ${fromKey}
      AND to_key = ${toKey} AND type = ${type} AND until IS NULL AND since <= ${until} ORDER BY since DESC LIMIT 1) RETURNING id`.values();
    return (row?.[0] as number | undefined) ?? 0;
  },
  async openChildren(q: Q, fromKey: string, type: string): Promise<string[]> {
    const rows = await q`SELECT DISTINCT to_key FROM edges WHERE from_key = ${fromKey} AND type = ${type} AND until IS NULL`.values();
    return rows.map((r) => r[0] as string);
  },
  async nameIdentifier(q: Q, key: string, handle: string): Promise<void> {
    await q`INSERT INTO lineage_names (key, handle) VALUES (${key}, ${handle}) ON CONFLICT (key) DO NOTHING`;
  },
  /** Open children per (fromKey, type) pair, in one statement. */
  async openChildrenMany(q: Q, pairs: ReadonlyArray<readonly [string, string]>): Promise<string[][]> {
    const out = pairs.map(() => new Set<string>());
    if (pairs.length === 0) return [];
    const rows = await q`SELECT i.n, e.to_key FROM unnest(${pairs.map((p) => p[0])}::text[], ${pairs.map((p) => p[1])}::text[]) WITH ORDINALITY AS i(f, t, n)
      JOIN edges e ON e.from_key = i.f AND e.type = i.t AND e.until IS NULL`.values();
    for (const [n, key] of rows) out[(n as number) - 1]!.add(key as string);
    return out.map((s) => [...s]);
  },
  /**
   * Opens many edges in one statement: per edge its new id, 0 when an open edge from→to (same
   * type) exists or the same edge came earlier in the list. Ids follow the list's order, as
   * `openEdge` one after another gives them.
   */
  async openEdges(q: Q, edges: ReadonlyArray<readonly [string, string, string, string, number]>): Promise<number[]> {
    const first = new Map<string, number>();
    edges.forEach(([f, t, type], i) => {
      const k = JSON.stringify([f, t, type]);
      if (!first.has(k)) first.set(k, i);
    });
    const todo = [...first.values()];
    const ids = edges.map(() => 0);
    if (todo.length === 0) return ids;
    const col = (c: number) => todo.map((i) => edges[i]![c]!);
    const rows = await q`WITH i AS (SELECT * FROM unnest(${col(0)}::text[], ${col(1)}::text[], ${col(2)}::text[], ${col(3)}::text[], ${col(4)}::bigint[])
        WITH ORDINALITY AS i(f, t, type, since, ev, n)),
      fresh AS (SELECT i.*, row_number() OVER (ORDER BY i.n) AS r FROM i
        WHERE NOT EXISTS (SELECT 1 FROM edges e WHERE e.from_key = i.f AND e.to_key = i.t AND e.type = i.type AND e.until IS NULL)),
      ins AS (INSERT INTO edges (id, from_key, to_key, type, since, until, event_id)
        SELECT (SELECT coalesce(max(id), 0) FROM edges) + r, f, t, type, since, NULL, ev FROM fresh RETURNING id)
      SELECT fresh.n, (SELECT coalesce(max(id), 0) FROM edges) + fresh.r FROM fresh`.values();
    for (const [n, id] of rows) ids[todo[(n as number) - 1]!] = id as number;
    return ids;
  },
  /** Names many identifiers in one statement; the first spelling of a key wins, as one by one. */
  async nameIdentifiers(q: Q, names: ReadonlyArray<readonly [string, string]>): Promise<void> {
    const first = new Map<string, string>();
    for (const [key, handle] of names) if (!first.has(key)) first.set(key, handle);
    if (first.size === 0) return;
    await q`INSERT INTO lineage_names (key, handle) SELECT * FROM unnest(${[...first.keys()]}::text[], ${[...first.values()]}::text[])
      ON CONFLICT (key) DO NOTHING`;
  },
};
