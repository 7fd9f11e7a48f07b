// What rsync's stderr says went wrong (pure): the paths it could not read or that vanished.

/** rsync exit codes that still leave a usable, if incomplete, tree. */
export const RSYNC_PARTIAL_CODES = [23, 24] as const;

const RSYNC_EXIT: Record<number, string> = {
  1: 'syntax or usage error', 2: 'protocol incompatibility', 3: 'errors selecting input/output files',
  5: 'error starting client-server protocol', 10: 'error in socket I/O', 11: 'error in file I/O',
  12: 'error in rsync protocol data stream', 14: 'error in IPC code', 20: 'received SIGUSR1 or SIGINT',
  23: 'partial transfer due to error', 24: 'partial transfer due to vanished source files',
  25: 'the --max-delete limit stopped deletions', 30: 'timeout in data send/receive', 35: 'timeout waiting for daemon connection',
  255: 'ssh failed (unreachable, refused or authentication failed)',
};

export function describeRsyncExit(code: number): string {
  return `rsync exit ${code}${RSYNC_EXIT[code] ? ` (${RSYNC_EXIT[code]})` : ''}`;
}

/**
 * Paths named in rsync's per-file error lines ("rsync: [sender] send_files failed to open
 * "/x": Permission denied (13)", "rsync: opendir "/y" failed: …", "file has vanished: "/z""),
 * with the reason. rsync escapes unprintable bytes as \#ooo; they are kept as rsync printed them.
 */
export function unreadablePaths(stderr: string): string[] {
  const out: string[] = [];
  for (const line of stderr.split('\n')) {
    if (line.startsWith('rsync error:')) continue;
    const vanished = /^file has vanished: "(.*)"$/.exec(line);
    if (vanished) {
      out.push(`${vanished[1]} (vanished)`);
      continue;
    }
    const m = /^rsync: (?:\[\w+\] )?.*?"(.*)"(?: \(in [^)]*\))?(?:: | failed: )(.*)$/.exec(line);
    if (m) out.push(`${m[1]} (${m[2].trim()})`);
  }
  return [...new Set(out)];
}
