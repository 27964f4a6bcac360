/** Lineage: events, the edges they open and close, identifiers' first spellings, walks. */
import type { EdgeRow, EventRow, LineageReads, WalkRow } from '../types.js';
import type { Db, Sync } from './db.js';

export function lineageReads(db: Db): Sync<LineageReads> {
  /** The lineage walk one way: from `self` along edges to `next`, one row per (identifier, depth, edge). */
  const walkStatement = (self: string, next: string) =>
    db.prepare(
      `WITH RECURSIVE walk(key, depth, edge) AS (
         VALUES (@root, 0, NULL)
         UNION
         SELECT e.${next}, w.depth + 1, e.id FROM walk w JOIN edges e ON e.${self} = w.key
         WHERE w.depth < @depth AND e.since <= @asOf AND (e.until IS NULL OR e.until > @asOf)
         LIMIT @limit)
       SELECT w.key, w.depth, r.handle AS recordHandle,
         CASE WHEN r.handle IS NULL THEN (SELECT handle FROM lineage_names n WHERE n.key = w.key) END AS namedHandle,
         CASE WHEN w.depth = @depth THEN EXISTS (SELECT 1 FROM edges x WHERE x.${self} = w.key AND x.since <= @asOf
           AND (x.until IS NULL OR x.until > @asOf)) ELSE 0 END AS more,
         e.id AS edgeId, e.from_key AS fromKey, e.to_key AS toKey, e.type, e.since, e.until, e.event_id AS eventId
       FROM walk w LEFT JOIN records r ON r.handle_key = w.key LEFT JOIN edges e ON e.id = w.edge`,
    );
  /** Edges valid at @asOf whose `end` is one of @keys. */
  const edgesStatement = (end: string) =>
    db.prepare(
      `SELECT id, from_key AS fromKey, to_key AS toKey, type, since, until, event_id AS eventId FROM edges
       WHERE ${end} IN (SELECT value FROM json_each(@keys)) AND since <= @asOf AND (until IS NULL OR until > @asOf) LIMIT @limit`,
    );
  const walkDown = walkStatement('from_key', 'to_key');
  const walkUp = walkStatement('to_key', 'from_key');
  const edgesFrom = edgesStatement('from_key');
  const edgesTo = edgesStatement('to_key');
  return {
    walk: (rootKey, direction, maxDepth, asOf, rowLimit) =>
      (direction === 'down' ? walkDown : walkUp).all({ root: rootKey, depth: maxDepth, asOf, limit: rowLimit }) as WalkRow[],
    edgesAt: (keys, direction, asOf, limit) => (direction === 'down' ? edgesFrom : edgesTo).all({ keys: JSON.stringify(keys), asOf, limit }) as EdgeRow[],
  };
}

export function lineageWrites(db: Db) {
  const insertEvent = db.prepare('INSERT INTO events (type, action, event_time, record_time, actor, body_json, audit_seq) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const openEdgeExists = db.prepare('SELECT 1 FROM edges WHERE from_key = ? AND to_key = ? AND type = ? AND until IS NULL LIMIT 1').pluck();
  const insertEdge = db.prepare('INSERT INTO edges (from_key, to_key, type, since, until, event_id) VALUES (?, ?, ?, ?, NULL, ?)');
  const closable = db
    .prepare(
      'SELECT id FROM edges WHERE from_key = @fromKey AND to_key = @toKey AND type = @type AND until IS NULL AND since <= @until ORDER BY since DESC LIMIT 1',
    )
    .pluck();
  const closeEdge = db.prepare('UPDATE edges SET until = ?, until_event = ? WHERE id = ?');
  const openChildren = db.prepare('SELECT DISTINCT to_key FROM edges WHERE from_key = ? AND type = ? AND until IS NULL').pluck();
  const nameIdentifier = db.prepare('INSERT OR IGNORE INTO lineage_names (key, handle) VALUES (?, ?)');
  return {
    insertEvent: (row: EventRow, at: string, actor: string, seq: number) =>
      Number(insertEvent.run(row.type, row.action, row.eventTime, at, actor, row.bodyJson, seq).lastInsertRowid),
    /** The new edge's id; 0 when an open edge from→to (same type) already exists. */
    openEdge: (fromKey: string, toKey: string, type: string, since: string, eventId: number): number => {
      if (openEdgeExists.get(fromKey, toKey, type) !== undefined) return 0;
      return Number(insertEdge.run(fromKey, toKey, type, since, eventId).lastInsertRowid);
    },
    /** The closed edge's id; 0 when there is none to close. */
    closeEdge(fromKey: string, toKey: string, type: string, until: string, eventId: number): number {
      const id = closable.get({ until, fromKey, toKey, type }) as number | undefined;
      if (id === undefined) return 0;
      closeEdge.run(until, eventId, id);
      return id;
    },
    openChildren: (fromKey: string, type: string) => openChildren.all(fromKey, type) as string[],
    nameIdentifier: (key: string, handle: string) => void nameIdentifier.run(key, handle),
  };
}
