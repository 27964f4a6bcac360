/**
 * Where an identifier's prefix is answered (API.md §3.3): the longest matching delegation
 * → that site; else homed here (a homed prefix or one hosted under it) → local store;
 * else → upstream; no upstream → not responsible.
 */
import { foldCase, isUnderPrefix, prefixChain } from '../identifier/index.js';
import type { PrefixRow, Store } from '../store/index.js';

/** Prefixes whose routes are kept between reloads. */
const MAX_ROUTES = 4096;

/** A route is shared by every caller that asks for its prefix until the next reload: never mutate one. */
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
  /**
   * Routes found, by prefix: a route is a function of `byKey`, so it holds until the next
   * reload. Every cache miss routes its prefix, and a route walks the prefix's ancestors
   * (about 600 bytes allocated). Bounded: past MAX_ROUTES prefixes, new ones are routed afresh.
   */
  let routes = new Map<string, Route>();

  async function reload(): Promise<void> {
    byKey = new Map((await deps.store.allPrefixes()).map((p) => [p.prefixKey, p]));
    routes = new Map();
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
      let route = routes.get(prefixKey);
      if (route === undefined) {
        route = routeOf(prefixKey);
        if (routes.size < MAX_ROUTES) routes.set(prefixKey, route);
      }
      return route;
    },
  };

  function routeOf(prefixKey: string): Route {
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
  }
}
