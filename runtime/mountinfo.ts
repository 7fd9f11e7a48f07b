// /proc/self/mountinfo, parsed purely (proc(5)): which mount holds a path.

export interface MountEntry {
  id: number;
  parent: number;
  /** "major:minor" of the filesystem's device */
  dev: string;
  /** root of the mount within its filesystem ("/" unless a bind mount of a subtree) */
  root: string;
  mountPoint: string;
  options: string[];
  fsType: string;
  source: string;
  superOptions: string[];
}

/** Undo the kernel's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash). */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f.length < sep + 3) throw new Error(`mountinfo: cannot parse line: ${line}`);
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      dev: f[2],
      root: unescapeMountField(f[3]),
      mountPoint: unescapeMountField(f[4]),
      options: f[5].split(','),
      fsType: f[sep + 1],
      source: unescapeMountField(f[sep + 2]),
      superOptions: (f[sep + 3] ?? '').split(','),
    });
  }
  return out;
}

/** The mount whose mountpoint is exactly `path` (the last one wins: later mounts shadow earlier). */
export function mountAt(entries: MountEntry[], path: string): MountEntry | undefined {
  let found: MountEntry | undefined;
  for (const e of entries) if (e.mountPoint === path) found = e;
  return found;
}
