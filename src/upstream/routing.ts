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
  /** Re-reads the prefix table (after a write on this connection). */
  reload(): void;
}

export function createRouter(deps: {
  store: Store;
  homed: string[];
  upstreamUrl: string;
  /** How often to look for prefix changes made by other processes (CLI), ms. */
  recheckMs?: number;
}): Router {
  const homedKeys = deps.homed.map(foldCase).sort((a, b) => b.length - a.length);
  const recheckMs = deps.recheckMs ?? 1000;
  let byKey = new Map<string, PrefixRow>();
  let dataVersion = -1;
  let checkedAt = 0;

  function reload(): void {
    byKey = new Map(deps.store.allPrefixes().map((p) => [p.prefixKey, p]));
    dataVersion = deps.store.dataVersion();
    checkedAt = Date.now();
  }

  function fresh(): void {
    const now = Date.now();
    if (now - checkedAt < recheckMs) return;
    checkedAt = now;
    if (deps.store.dataVersion() !== dataVersion) reload();
  }

  function homedAncestor(prefixKey: string): string | undefined {
    return homedKeys.find((h) => isUnderPrefix(prefixKey, h));
  }

  reload();
  return {
    reload,
    homedAncestor,
    homed: () => homedKeys,
    route(prefixKey) {
      fresh();
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
