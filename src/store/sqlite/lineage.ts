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
  // The set-based forms for a bulk chunk: elements are JSON arrays, answered in element order.
  const openChildrenMany = db
    .prepare(
      `SELECT DISTINCT j.key, e.to_key FROM json_each(?) j JOIN edges e ON e.from_key = j.value ->> 0 AND e.type = j.value ->> 1 AND e.until IS NULL
       ORDER BY j.key, e.to_key`,
    )
    .raw();
  const openAmong = db
    .prepare(
      `SELECT j.key FROM json_each(?) j WHERE EXISTS
         (SELECT 1 FROM edges e WHERE e.from_key = j.value ->> 0 AND e.to_key = j.value ->> 1 AND e.type = j.value ->> 2 AND e.until IS NULL)`,
    )
    .pluck();
  const namesOf = db.prepare('SELECT key, handle FROM lineage_names WHERE key IN (SELECT value FROM json_each(?))').raw();
  const insertName = db.prepare('INSERT INTO lineage_names (key, handle) VALUES (?, ?)');
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
    /** `openChildren` for each (fromKey, type), in one statement. */
    openChildrenMany(pairs: ReadonlyArray<readonly [string, string]>): string[][] {
      const out = pairs.map((): string[] => []);
      if (pairs.length > 0) for (const [i, to] of openChildrenMany.all(JSON.stringify(pairs)) as Array<[number, string]>) out[i]!.push(to);
      return out;
    },
    /**
     * `openEdge` for each edge in order: the ids of the edges opened (0 for one already open, or
     * opened earlier in the list). One lookup for all; the new rows one statement each (cheaper
     * than one INSERT … SELECT FROM json_each(?) on SQLite), so ids follow list order.
     */
    openEdges(edges: ReadonlyArray<readonly [string, string, string, string, number]>): number[] {
      const ids = edges.map(() => 0);
      if (edges.length === 0) return ids;
      const open = new Set(openAmong.all(JSON.stringify(edges.map(([f, t, type]) => [f, t, type]))) as number[]);
      const seen = new Set<string>();
      const todo: number[] = [];
      edges.forEach(([f, t, type], i) => {
        const k = JSON.stringify([f, t, type]);
        if (open.has(i) || seen.has(k)) return;
        seen.add(k);
        todo.push(i);
      });
      for (const i of todo) {
        const [f, t, type, since, eventId] = edges[i]!;
        ids[i] = Number(insertEdge.run(f, t, type, since, eventId).lastInsertRowid);
      }
      return ids;
    },
    /**
     * `nameIdentifier` for each pair in order (the first spelling wins): one lookup, then an
     * insert per new key. Answers every named key's row as it is now.
     */
    nameIdentifiers(names: ReadonlyArray<readonly [string, string]>): Map<string, string> {
      const rows = new Map<string, string>();
      if (names.length === 0) return rows;
      for (const [key, handle] of namesOf.all(JSON.stringify([...new Set(names.map((n) => n[0]))])) as Array<[string, string]>) rows.set(key, handle);
      for (const [key, handle] of names)
        if (!rows.has(key)) {
          insertName.run(key, handle);
          rows.set(key, handle);
        }
      return rows;
    },
  };
}
