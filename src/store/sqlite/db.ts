/** The better-sqlite3 handle type, and how the engine's synchronous parts become the async interface. */
import type Database from 'better-sqlite3';

export type Db = Database.Database;

/** The synchronous form of an async interface: what a module on better-sqlite3 implements. */
export type Sync<T> = { [K in keyof T]: T[K] extends (...a: infer A) => Promise<infer R> ? (...a: A) => R : T[K] };

/** Wraps each synchronous method so it returns a promise (a throw becomes a rejection). */
export function promised<T extends object>(sync: Sync<T>): T {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(sync)) out[name] = async (...args: unknown[]) => (fn as (...a: unknown[]) => unknown)(...args);
  return out as T;
}
