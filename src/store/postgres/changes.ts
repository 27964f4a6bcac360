/**
 * The change feed: one row per cached thing a write made stale, ids taken from the chain head
 * (contiguous across writers in every process), pruned to a bounded length.
 */
import type { ChangeReads, ChangeRow } from '../types.js';
import type { Q } from './db.js';

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

/** Records `changes` ("kind key" strings) with ids after `lastId`; returns the new last id. */
export async function recordChanges(q: Q, lastId: number, auditSeq: number | null, changes: Iterable<string>): Promise<number> {
  const ids: number[] = [];
  const kinds: string[] = [];
  const keys: string[] = [];
  for (const c of changes) {
    const space = c.indexOf(' ');
    ids.push(lastId + ids.length + 1);
    kinds.push(c.slice(0, space));
    keys.push(c.slice(space + 1));
  }
  if (ids.length === 0) return lastId;
  await q`INSERT INTO changes (id, audit_seq, kind, key)
    SELECT id, ${auditSeq}::bigint, kind, key FROM unnest(${ids}::bigint[], ${kinds}::text[], ${keys}::text[]) AS c(id, kind, key)`;
  return lastId + ids.length;
}

/** Drops rows past the retention; the newest always stays, so ids are never reused. */
export async function pruneChanges(q: Q, lastId: number, retention: number): Promise<void> {
  if (lastId > retention) await q`DELETE FROM changes WHERE id <= ${lastId - retention}`;
}
