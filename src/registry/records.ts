/** Record writes (PUT/DELETE) and listing, all through the store's one write path. */
import { randomUUID } from 'node:crypto';
import { IdnError } from '../errors.js';
import type { Identifier } from '../identifier/index.js';
import type { Store, WriteTx } from '../store/index.js';
import type { Route } from '../upstream/routing.js';
import { authorize, writeTarget } from './authorize.js';
import type { Principal } from './tokens.js';
import { type HandleValue, type InputValue, mergeValues, parseValuesBody } from './values.js';
import { answerEtag, renderRecord } from './answer.js';

export interface PutOptions {
  overwrite: boolean;
  /** Add/replace only these indexes ('various': every index in the body). */
  only?: Set<number> | 'various';
}

export interface Records {
  put(id: Identifier, body: unknown, opts: PutOptions, actor: string): { created: boolean; handle: string; unchanged: boolean };
  remove(id: Identifier, only: Set<number> | undefined, actor: string): { handle: string };
  list(prefixKey: string, page: number, pageSize: number): { totalCount: number; handles: string[] };
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
  onChange: (key: string) => void;
  /** Metadata templates: checks the final values, then keeps template state and edges in step. */
  templates?: { check(id: Identifier, values: readonly InputValue[]): void; apply(tx: WriteTx, id: Identifier, values: readonly InputValue[]): void };
}): Records {
  const { store } = deps;
  return {
    put(id, body, opts, actor) {
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
      const out = store.write({ actor, action: 'record.update', target: id.text }, (tx) => {
        const existing = store.getRecord(id.key);
        if (existing !== undefined && !opts.overwrite)
          throw new IdnError(
            'IDN_HANDLE_EXISTS',
            existing.handle === id.text
              ? `${id.text} already exists; send overwrite=true to replace it`
              : `${id.text} conflicts with the existing ${existing.handle} (identifiers are case-insensitive)`,
            { handle: existing.handle },
          );
        if (existing === undefined && only !== undefined)
          throw new IdnError('IDN_NOT_FOUND', `${id.text} does not exist; create it with a PUT without index=`, { handle: id.text });
        const handle = existing?.handle ?? id.text;
        const previous = existing === undefined ? [] : (JSON.parse(existing.valuesJson) as HandleValue[]);
        const merged = mergeValues(previous, incoming, tx.at, only);
        const rendered = renderRecord(merged);
        if (existing !== undefined && rendered.valuesJson === existing.valuesJson)
          return { result: { created: false, handle, unchanged: true }, payload: null };
        deps.templates?.check(id, merged);
        tx.putRecord({ handleKey: id.key, handle, prefixKey: id.prefixKey, ...rendered, etag: answerEtag(handle, rendered) });
        deps.templates?.apply(tx, id, merged);
        return {
          result: { created: existing === undefined, handle, unchanged: false },
          payload: `${handle}\n${rendered.valuesJson}`,
          action: existing === undefined ? 'record.create' : 'record.update',
        };
      });
      deps.onChange(id.key);
      return out;
    },

    remove(id, only, actor) {
      const out = store.write({ actor, action: 'record.delete', target: id.text }, (tx) => {
        const existing = store.getRecord(id.key);
        if (existing === undefined) throw new IdnError('IDN_NOT_FOUND', `${id.text} does not exist`, { handle: id.text });
        if (only === undefined) {
          tx.deleteRecord(id.key, existing.handle);
          return { result: { handle: existing.handle }, payload: `${existing.handle}\n` };
        }
        const values = JSON.parse(existing.valuesJson) as HandleValue[];
        const present = new Set(values.map((v) => v.index));
        const missing = [...only].filter((i) => !present.has(i));
        if (missing.length > 0)
          throw new IdnError('IDN_VALUE_NOT_FOUND', `${existing.handle} has no value at index ${missing.join(', ')}`, { handle: existing.handle });
        const kept = values.filter((v) => !only.has(v.index));
        if (kept.length === 0)
          throw new IdnError('IDN_INVALID_VALUE', 'this would remove every value; a record needs at least one (DELETE without index= removes the identifier)', {
            handle: existing.handle,
          });
        deps.templates?.check(id, kept);
        const rendered = renderRecord(kept);
        tx.putRecord({ handleKey: id.key, handle: existing.handle, prefixKey: id.prefixKey, ...rendered, etag: answerEtag(existing.handle, rendered) });
        deps.templates?.apply(tx, id, kept);
        return { result: { handle: existing.handle }, payload: `${existing.handle}\n${rendered.valuesJson}`, action: 'record.values.delete' };
      });
      deps.onChange(id.key);
      return out;
    },

    list(prefixKey, page, pageSize) {
      const totalCount = store.countRecords(prefixKey);
      const handles = pageSize === 0 ? [] : store.listRecordHandles(prefixKey, pageSize, page * pageSize);
      return { totalCount, handles };
    },
  };
}
