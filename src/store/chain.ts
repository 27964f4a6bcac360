/** Pure helpers of the audit chain and timestamps, shared by every engine. */
import { createHash } from 'node:crypto';
import type { AuditRow } from './types.js';

export const GENESIS_HASH = '0'.repeat(64);

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function auditHash(prevHash: string, e: Omit<AuditRow, 'hash' | 'prevHash'>): string {
  return sha256(`${prevHash}\n${JSON.stringify([e.seq, e.at, e.actor, e.action, e.target, e.digest])}`);
}

/** The line a record version contributes to its audit digest (values null: deleted). */
export function versionLine(handle: string, valuesJson: string | null): string {
  return `${handle}\n${valuesJson ?? ''}`;
}

export function isoSeconds(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}
