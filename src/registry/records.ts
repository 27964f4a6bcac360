/** Record writes (PUT/DELETE) and listing, all through the store's one write path. */
import { randomUUID } from 'node:crypto';
import { IdnError } from '../errors.js';
import { foldCase, type Identifier } from '../identifier/index.js';
import { type RecordRow, type Store, versionLine, type WriteTx } from '../store/index.js';
import type { Route } from '../upstream/routing.js';
import { authorize, writeTarget } from './authorize.js';
import type { Principal } from './tokens.js';
import { type HandleValue, type InputValue, mergeValues, parseValuesBody } from './values.js';
import { answerEtag, renderRecord } from './answer.js';
import { deletedError, tombstoneIn } from './tombstones.js';

export interface PutOptions {
  overwrite: boolean;
  /** Add/replace only these indexes ('various': every index in the body). */
  only?: Set<number> | 'various';
  /** Re-register an identifier whose latest state is deleted (the route allows it to admins only). */
  reuseDeleted?: boolean;
}

export interface Records {
  put(id: Identifier, body: unknown, opts: PutOptions, actor: string): Promise<{ created: boolean; handle: string; unchanged: boolean }>;
  remove(id: Identifier, only: Set<number> | undefined, actor: string): Promise<{ handle: string }>;
  /** Page `page` of `pageSize` (offset: Handle.Net's paging); the first page is a keyset read. */
  list(prefixKey: string, page: number, pageSize: number): Promise<ListPage>;
  /** The page after the key `afterKey` ('' from the start): one index seek, however deep. */
  listAfter(prefixKey: string, afterKey: string, pageSize: number): Promise<ListPage>;
}

export interface ListPage {
  totalCount: number;
  handles: string[];
  /** The key the next page starts after; absent on the last page. */
  after?: string;
}

/** What to do to a record's values: merge `put` in (only the indexes in `only`, if given), or drop some indexes. */
export type RecordEdit = { put: readonly InputValue[]; only?: Set<number> } | { drop: ReadonlySet<number> };

export interface RecordWritten {
  /** 'unchanged': the result equals what is stored (or `accept` said no); nothing was written. */
  state: 'created' | 'replaced' | 'unchanged' | 'refused';
  handle: string;
  /** The values after the edit. */
  values: HandleValue[];
  /** This record's part of the audit digest. */
  line: string;
  /** The version written (0 when nothing was). */
  version: number;
}

/**
 * The one write of a record, for PUT, PUT ?index=, DELETE ?index=, bulk chunks and seeding:
 * merges the edit into the stored values, renders the stored form with its answer's metadata
 * (public list, ETag, max-age), stores it as a new version and returns its audit digest line.
 * `accept` sees the values of a real change before it is stored: it throws to refuse the
 * write, or returns false to leave the record as it is ('refused').
 */
export async function writeRecord(
  tx: WriteTx,
  id: Pick<Identifier, 'key' | 'prefixKey' | 'text'>,
  existing: RecordRow | undefined,
  edit: RecordEdit,
  accept?: (values: HandleValue[]) => boolean | void,
): Promise<RecordWritten> {
  const handle = existing?.handle ?? id.text;
  const previous = existing === undefined ? [] : (JSON.parse(existing.valuesJson) as HandleValue[]);
  const values = 'put' in edit ? mergeValues(previous, edit.put as InputValue[], tx.at, edit.only) : previous.filter((v) => !edit.drop.has(v.index));
  const rendered = renderRecord(values);
  const line = versionLine(handle, rendered.valuesJson);
  if (existing !== undefined && rendered.valuesJson === existing.valuesJson) return { state: 'unchanged', handle, values, line, version: 0 };
  if (accept?.(values) === false) return { state: 'refused', handle, values, line, version: 0 };
  // The ETag is hashed only for what is written (an overwrite=false re-import hashes nothing).
  const version = await tx.putRecord({ handleKey: id.key, handle, prefixKey: id.prefixKey, ...rendered, etag: answerEtag(handle, rendered) });
  return { state: existing === undefined ? 'created' : 'replaced', handle, values, line, version };
}

/** Appends a fresh suffix to `text` (mintNewSuffix=true). */
export function mintSuffix(text: string): string {
  return `${text}${randomUUID()}`;
}

/**
 * The write guard, in the contract's order after syntax: routing (400/301) →
 * authentication (401/402) → scope (403/401) → prefix status (403/401).
 */
export function authorizeWrite(route: Route, principal: Principal | undefined, id: Identifier): void {
  authorize(principal, 'record.write', writeTarget(route, id));
}

export function createRecords(deps: {
  store: Store;
  valuesMax: number;
  /** A put or remove was stored (statistics). */
  onWritten?: () => void;
  /** Metadata templates: checks the final values, then keeps template state and edges in step. */
  templates?: { check(id: Identifier, values: readonly InputValue[]): void; apply(tx: WriteTx, id: Identifier, values: readonly InputValue[]): Promise<void> };
}): Records {
  const { store } = deps;
  async function listAfter(prefixKey: string, afterKey: string, pageSize: number): Promise<ListPage> {
    const totalCount = await store.countRecords(prefixKey);
    if (pageSize === 0) return { totalCount, handles: [] };
    // One more than asked tells whether a next page exists.
    const rows = await store.listRecordsAfter(prefixKey, afterKey, pageSize + 1);
    const page = rows.slice(0, pageSize);
    return { totalCount, handles: page.map((r) => r.handle), ...(rows.length > pageSize ? { after: page.at(-1)!.key } : {}) };
  }

  return {
    async put(id, body, opts, actor) {
      let incoming;
      try {
        incoming = parseValuesBody(body, { valuesMax: deps.valuesMax, handleKey: id.key });
      } catch (err) {
        (err as IdnError).handle = id.text;
        throw err;
      }
      let only: Set<number> | undefined;
      if (opts.only === 'various') only = new Set(incoming.map((v) => v.index));
      else if (opts.only !== undefined) {
        only = opts.only;
        for (const v of incoming)
          if (!only.has(v.index))
            throw new IdnError('IDN_INVALID_VALUE', `value index ${v.index} is in the body but not in index=; list it or leave it out`, { handle: id.text });
        const inBody = new Set(incoming.map((v) => v.index));
        for (const i of only) if (!inBody.has(i)) throw new IdnError('IDN_INVALID_VALUE', `index=${i} names no value in the body`, { handle: id.text });
      }
      // The engine may load the record (and its newest version) with the batch, before this write runs.
      const hint = { keys: [id.key] };
      const out = await store.write(
        { actor, action: 'record.update', target: id.text },
        async (tx) => {
          const existing = await tx.getRecord(id.key);
          if (existing !== undefined && !opts.overwrite && only !== undefined) {
            // As Handle.Net adds values: new indexes are added, an index already there is the conflict.
            const present = new Set((JSON.parse(existing.valuesJson) as HandleValue[]).map((v) => v.index));
            const taken = [...only].filter((i) => present.has(i));
            if (taken.length > 0)
              throw new IdnError(
                'IDN_VALUE_EXISTS',
                `${id.text} already has a value at index ${taken.join(', ')}; send overwrite=true to replace it, or use another index`,
                { handle: id.text },
              );
          } else if (existing !== undefined && !opts.overwrite)
            throw new IdnError(
              'IDN_HANDLE_EXISTS',
              existing.handle === id.text
                ? `${id.text} already exists; send overwrite=true to replace it`
                : `${id.text} conflicts with the existing ${existing.handle} (identifiers are case-insensitive)`,
              { handle: existing.handle },
            );
          // A deleted identifier comes back only by an explicit choice, never by an ordinary PUT.
          const tombstone = existing === undefined ? await tombstoneIn(tx, store, id.key) : undefined;
          if (tombstone !== undefined && opts.reuseDeleted !== true) throw deletedError(tombstone);
          if (existing === undefined && only !== undefined)
            throw new IdnError('IDN_NOT_FOUND', `${id.text} does not exist; create it with a PUT without index=`, { handle: id.text });
          const w = await writeRecord(tx, id, existing, { put: incoming, ...(only !== undefined ? { only } : {}) }, (values) =>
            deps.templates?.check(id, values),
          );
          if (w.state === 'unchanged') return { result: { created: false, handle: w.handle, unchanged: true }, payload: null };
          await deps.templates?.apply(tx, id, w.values);
          return {
            result: { created: w.state === 'created', handle: w.handle, unchanged: false },
            payload: w.line,
            action: w.state !== 'created' ? 'record.update' : tombstone !== undefined ? 'record.reregister' : 'record.create',
          };
        },
        hint,
      );
      deps.onWritten?.();
      return out;
    },

    async remove(id, only, actor) {
      const hint = { keys: [id.key] };
      const out = await store.write(
        { actor, action: 'record.delete', target: id.text },
        async (tx) => {
          const existing = await tx.getRecord(id.key);
          if (existing === undefined) throw new IdnError('IDN_NOT_FOUND', `${id.text} does not exist`, { handle: id.text });
          if (only === undefined) {
            await tx.deleteRecord(id.key, existing.handle);
            return { result: { handle: existing.handle }, payload: versionLine(existing.handle, null) };
          }
          const values = JSON.parse(existing.valuesJson) as HandleValue[];
          const present = new Set(values.map((v) => v.index));
          const missing = [...only].filter((i) => !present.has(i));
          if (missing.length > 0)
            throw new IdnError('IDN_VALUE_NOT_FOUND', `${id.text} has no value at index ${missing.join(', ')}; nothing was removed`, { handle: id.text });
          if (values.every((v) => only.has(v.index)))
            throw new IdnError(
              'IDN_INVALID_VALUE',
              'this would remove every value; a record needs at least one (DELETE without index= removes the identifier)',
              {
                handle: existing.handle,
              },
            );
          const w = await writeRecord(tx, id, existing, { drop: only }, (kept) => deps.templates?.check(id, kept));
          await deps.templates?.apply(tx, id, w.values);
          return { result: { handle: existing.handle }, payload: w.line, action: 'record.values.delete' };
        },
        hint,
      );
      deps.onWritten?.();
      return out;
    },

    async list(prefixKey, page, pageSize) {
      if (page === 0) return listAfter(prefixKey, '', pageSize);
      const totalCount = await store.countRecords(prefixKey);
      if (pageSize === 0) return { totalCount, handles: [] };
      const handles = await store.listRecordHandles(prefixKey, pageSize + 1, page * pageSize);
      if (handles.length <= pageSize) return { totalCount, handles };
      handles.length = pageSize;
      return { totalCount, handles, after: foldCase(handles.at(-1)!) };
    },

    listAfter,
  };
}
