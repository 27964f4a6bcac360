/**
 * A hot standby replays the primary's commits with some delay. The engine remembers, per record
 * key, the newest change-feed id that touched it — its own commits and every feed row the change
 * follower read from the primary — and a cache-miss read of that key from a standby that has not
 * replayed that change yet is made again on the primary. So a node never caches a row older
 * than the change that evicted it, and reads its own writes at once. Bounded: past `max` keys,
 * those the standby has replayed are forgotten, then the oldest, whose ids raise a floor below
 * which every standby read goes to the primary.
 */
export interface Freshness {
  /** `key` must be read at feed id `id` or later. */
  note(key: string, id: number): void;
  /** Whether a standby read of `key` that saw feed position `position` is recent enough. */
  fresh(key: string, position: number): boolean;
}

export function createFreshness(max = 100_000): Freshness {
  const need = new Map<string, number>();
  let floor = 0;
  let replayed = 0;

  function trim(): void {
    for (const [key, id] of need) if (id <= replayed) need.delete(key);
    for (const [key, id] of need) {
      if (need.size <= max * 0.9) break;
      need.delete(key);
      if (id > floor) floor = id;
    }
  }

  return {
    note(key, id) {
      need.delete(key);
      need.set(key, id);
      if (need.size > max) trim();
    },
    fresh(key, position) {
      if (position > replayed) replayed = position;
      return position >= floor && position >= (need.get(key) ?? 0);
    },
  };
}
