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
  async openEdge(q: Q, fromKey: string, toKey: string, type: string, since: string, eventId: number): Promise<boolean> {
    const open = await q`SELECT 1 FROM edges WHERE from_key = ${fromKey} AND to_key = ${toKey} AND type = ${type} AND until IS NULL LIMIT 1`;
    if (open.length > 0) return false;
    await q`INSERT INTO edges (id, from_key, to_key, type, since, until, event_id)
      SELECT coalesce(max(id), 0) + 1, ${fromKey}, ${toKey}, ${type}, ${since}, NULL, ${eventId} FROM edges`;
    return true;
  },
  async closeEdge(q: Q, fromKey: string, toKey: string, type: string, until: string, eventId: number): Promise<boolean> {
    const r = await q`UPDATE edges SET until = ${until}, until_event = ${eventId} WHERE id = (SELECT id FROM edges WHERE from_key = ${fromKey}
      AND to_key = ${toKey} AND type = ${type} AND until IS NULL AND since <= ${until} ORDER BY since DESC LIMIT 1)`;
    return r.count > 0;
  },
  async openChildren(q: Q, fromKey: string, type: string): Promise<string[]> {
    const rows = await q`SELECT DISTINCT to_key FROM edges WHERE from_key = ${fromKey} AND type = ${type} AND until IS NULL`.values();
    return rows.map((r) => r[0] as string);
  },
  async nameIdentifier(q: Q, key: string, handle: string): Promise<void> {
    await q`INSERT INTO lineage_names (key, handle) VALUES (${key}, ${handle}) ON CONFLICT (key) DO NOTHING`;
  },
};
