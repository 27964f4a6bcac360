/**
 * Audit verifications a node runs for `GET /api/audit/verify` (API.md §3.4): each walks the
 * chain in slices (src/store/verify.ts yields between them, so resolution goes on), at most
 * `concurrency` at once per process, each with progress readable while it runs.
 */
import { IdnError } from '../errors.js';
import type { AuditVerdict, StoreEngine, VerifyProgress } from '../store/types.js';

export interface RunningVerify extends VerifyProgress {
  id: number;
  startedAt: string;
}

export interface Verifier {
  /** Runs one verification; 503 (IDN_UNAVAILABLE, Retry-After) when `concurrency` already run. */
  run(): Promise<AuditVerdict>;
  /** The verifications under way, oldest first. */
  running(): RunningVerify[];
}

export function createVerifier(opts: { store: StoreEngine; concurrency: number; slice: number; now?: () => Date }): Verifier {
  const now = opts.now ?? (() => new Date());
  const runs = new Map<number, RunningVerify>();
  let nextId = 1;
  return {
    async run() {
      if (runs.size >= opts.concurrency)
        throw new IdnError(
          'IDN_UNAVAILABLE',
          `${runs.size} audit verification(s) already running (config audit.verifyConcurrency); retry when it finishes (GET /api/audit/verify/progress shows how far it is)`,
          { headers: { 'retry-after': '5' } },
        );
      const id = nextId++;
      const run: RunningVerify = { id, startedAt: now().toISOString(), phase: 'chain', checked: 0, total: 0, rows: 0 };
      runs.set(id, run);
      try {
        return await opts.store.verifyAudit({ sliceEntries: opts.slice, onProgress: (p) => Object.assign(run, p) });
      } finally {
        runs.delete(id);
      }
    },
    running: () => [...runs.values()].map((r) => ({ ...r })),
  };
}
