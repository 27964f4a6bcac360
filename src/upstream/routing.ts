/**
 * Where an identifier's prefix is answered (API.md §3.3): the longest matching delegation
 * → that site; else homed here (a homed prefix or one hosted under it) → local store;
 * else → upstream; no upstream → not responsible.
 */
import { foldCase, isUnderPrefix, prefixChain } from '../identifier/index.js';
import type { PrefixRow, Store } from '../store/index.js';

export type Route =
  | { kind: 'local'; homedKey: string; registered: PrefixRow[] }
  | { kind: 'delegated'; site: string; prefix: PrefixRow }
  | { kind: 'upstream'; url: string }
  | { kind: 'none' };

export interface Router {
  route(prefixKey: string): Route;
  /** The homed prefix (normalised) this prefix lies under, if any. */
  homedAncestor(prefixKey: string): string | undefined;
  homed(): readonly string[];
  /** Re-reads the prefix table (the change feed named a prefix). */
  reload(): Promise<void>;
}

export async function createRouter(deps: { store: Store; homed: string[]; upstreamUrl: string }): Promise<Router> {
  const homedKeys = deps.homed.map(foldCase).sort((a, b) => b.length - a.length);
  let byKey = new Map<string, PrefixRow>();

  async function reload(): Promise<void> {
    byKey = new Map((await deps.store.allPrefixes()).map((p) => [p.prefixKey, p]));
  }

  function homedAncestor(prefixKey: string): string | undefined {
    return homedKeys.find((h) => isUnderPrefix(prefixKey, h));
  }

  await reload();
  return {
    reload,
    homedAncestor,
    homed: () => homedKeys,
    route(prefixKey) {
      const registered: PrefixRow[] = [];
      for (const p of prefixChain(prefixKey)) {
        const row = byKey.get(p);
        if (row === undefined) continue;
        if (row.site !== null) return { kind: 'delegated', site: row.site, prefix: row };
        registered.push(row);
      }
      const homedKey = homedAncestor(prefixKey);
      if (homedKey !== undefined) return { kind: 'local', homedKey, registered };
      if (deps.upstreamUrl !== '') return { kind: 'upstream', url: deps.upstreamUrl };
      return { kind: 'none' };
    },
  };
}
