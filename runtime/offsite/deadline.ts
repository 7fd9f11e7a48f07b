// Pure: how long the offsite phase of one run may take in total. Socket timeouts catch a store
// that goes silent; this catches everything else (a store that trickles, retries that add up).
// When it passes, the phase abandons what is in flight, records nothing for it, and the next
// run sends a newer snapshot in its place.
import type { Inventory } from '../../contract/inventory-schema.ts';

const MINUTE = 60_000;
const DAY = 86_400_000;
/** the default never goes past a day: a run that held the upload for longer is stuck */
export const MAX_DEFAULT_DEADLINE_MS = DAY;

export type OffsiteScheduleSpec = Inventory['schedule']['offsite'];

/**
 * `deadlineMinutes` when set; else the interval between uploads (incrementalEveryDays, or
 * fullEveryDays for fulls only), at most a day: an upload never runs into the next one's turn.
 */
export function offsiteDeadlineMs(s: OffsiteScheduleSpec): number {
  if (s.deadlineMinutes !== undefined) return s.deadlineMinutes * MINUTE;
  return Math.min(MAX_DEFAULT_DEADLINE_MS, (s.incrementalEveryDays ?? s.fullEveryDays) * DAY);
}

export function formatDuration(ms: number): string {
  if (ms < MINUTE) return `${Math.round(ms / 1000)} s`;
  if (ms < 2 * 3_600_000) return `${+(ms / MINUTE).toFixed(1)} min`;
  return `${+(ms / 3_600_000).toFixed(1)} h`;
}

/** The reason the phase's signal carries when the deadline passes. */
export class OffsiteDeadlineError extends Error {
  constructor(readonly ms: number) {
    super(`the offsite deadline (${formatDuration(ms)}, schedule.offsite.deadlineMinutes) passed; nothing of this upload was recorded, a later run sends a newer snapshot`);
  }
}
