/**
 * The change feed: one row per cached thing a write made stale, ids taken from the chain head
 * (contiguous across writers in every process), pruned to a bounded length.
 */
import type { ChangeReads, ChangeRow } from '../types.js';
import type { Q, Sql } from './db.js';

/** Other nodes LISTEN on it; the payload is the feed's newest id after the commit. */
export const CHANGES_CHANNEL = 'idnode_changes';

export function changeReads(q: Q): ChangeReads {
  async function changesHead(): Promise<number> {
    const [row] = await q`SELECT change_id FROM chain_head WHERE id = 1`.values();
    return (row?.[0] as number | undefined) ?? 0;
  }
  return {
    // The feed's head moves with every commit anywhere that changed cached state: what a follower polls.
    dataVersion: changesHead,
    changesAfter: async (cursor, limit) => [
      ...(await q.unsafe<ChangeRow[]>('SELECT id, audit_seq AS "auditSeq", kind, key FROM changes WHERE id > $1 ORDER BY id LIMIT $2', [cursor, limit], {
        prepare: true,
      })),
    ],
    changesHead,
  };
}

/** A feed row waiting for its batch's insert: id, audit seq, kind, key. */
export type ChangeInsert = [id: number, auditSeq: number | null, kind: string, key: string];

/** The feed rows a batch recorded, in one statement. */
export async function insertChanges(q: Q, rows: ChangeInsert[]): Promise<void> {
  if (rows.length === 0) return;
  await q`INSERT INTO changes (id, audit_seq, kind, key)
    SELECT * FROM unnest(${rows.map((r) => r[0])}::bigint[], ${rows.map((r) => r[1])}::bigint[], ${rows.map((r) => r[2])}::text[], ${rows.map((r) => r[3])}::text[])`.execute();
}

/** Drops rows past the retention; the newest always stays, so ids are never reused. */
export async function pruneChanges(q: Q, lastId: number, retention: number): Promise<void> {
  if (lastId > retention) await q`DELETE FROM changes WHERE id <= ${lastId - retention}`.execute();
}

/**
 * LISTENs on the feed's channel on a connection of its own: `wake` runs on every notification
 * and each time the listen is (re-)established, since notifications sent while it was down are
 * lost. The pool (db.ts) listens again, until it holds, when that connection closes or its
 * database stops answering.
 */
export async function watchChanges(sql: Sql, wake: () => void): Promise<() => Promise<void>> {
  const sub = await sql.listen(
    CHANGES_CHANNEL,
    () => wake(),
    () => wake(),
  );
  return () => sub.unlisten();
}
