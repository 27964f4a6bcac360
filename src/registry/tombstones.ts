/**
 * Tombstones: an identifier whose latest version is a deletion. They come from the record
 * versions, so a node with history off (a throwaway node) keeps none. Only the HTML
 * not-found page and the write path look: resolutions never do.
 */
import { IdnError } from '../errors.js';
import type { Store, WriteTx } from '../store/index.js';

/** Later than any version's time: versionAsOf then answers the latest version. */
const END_OF_TIME = '9999-12-31T23:59:59Z';

export interface Tombstone {
  /** The spelling the identifier had. */
  handle: string;
  /** When it was deleted (ISO seconds). */
  at: string;
  /** Who deleted it (a token id). */
  actor: string;
}

export async function tombstoneOf(store: Pick<Store, 'history' | 'versionAsOf'>, handleKey: string): Promise<Tombstone | undefined> {
  if (!store.history) return undefined;
  const v = await store.versionAsOf(handleKey, END_OF_TIME);
  return v !== undefined && v.valuesJson === null ? { handle: v.handle, at: v.at, actor: v.actor } : undefined;
}

/**
 * The tombstone as a write sees it: through the write transaction when the engine reads it
 * there (PostgreSQL answers from the batch's memory, earlier writes of the batch included).
 */
export async function tombstoneIn(tx: WriteTx, store: Pick<Store, 'history' | 'versionAsOf'>, handleKey: string): Promise<Tombstone | undefined> {
  return tx.tombstone !== undefined ? tx.tombstone(handleKey) : tombstoneOf(store, handleKey);
}

export function deletedMessage(t: Tombstone): string {
  return `${t.handle} was deleted at ${t.at}; re-registering a deleted identifier must be deliberate: an admin sends PUT /api/handles/${t.handle}?reuseDeleted=true`;
}

export function deletedError(t: Tombstone): IdnError {
  return new IdnError('IDN_HANDLE_DELETED', deletedMessage(t), { handle: t.handle });
}
