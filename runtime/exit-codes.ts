// Exit codes of `pullvault` (documented in --help and the report).
export const EXIT = {
  OK: 0,
  /** one or more servers failed (unreachable, rsync error, dump error, no room even after pruning); the others were snapshotted */
  SERVER_FAILED: 1,
  /** bad command line or config */
  USAGE: 2,
  /** pre-flight refused: backup disk not mounted/unlocked; nothing written (free space is judged per server) */
  REFUSED: 3,
  /** every server pulled, but some snapshot is flagged partial (rsync 23/24: unreadable or vanished files) */
  PARTIAL: 4,
  /** internal error (EX_SOFTWARE): a bug; the run record says so */
  INTERNAL: 70,
  /** another run holds the pull lock (EX_TEMPFAIL); an upload holds only the offsite lock */
  LOCKED: 75,
} as const;
