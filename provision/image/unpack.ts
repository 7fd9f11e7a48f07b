// Unpacks an ext4 filesystem image into a directory WITHOUT loop devices or mounts, keeping what
// a root filesystem needs: owners, modes (incl. setuid/setgid/sticky, which `chown` would clear if
// done after `chmod`), symlinks, hard links, device nodes, FIFOs and extended attributes (file
// capabilities such as ping's cap_net_raw).
//
// debugfs `rdump` copies contents and symlinks but loses setuid bits, hard links, device nodes,
// FIFOs and xattrs; so after it we read the metadata with debugfs (`ls -p` per directory inode,
// `ea_list`/`ea_get` for xattrs, `stat` for device numbers; one debugfs process per batch) and
// apply it. Must run as root.
import { chmodSync, lchownSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run } from '../../lib/proc/index.ts';

interface Entry {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  /** path relative to the root, e.g. "usr/bin/ping" */
  rel: string;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;

async function debugfsBatch(image: string, commands: string[], tmp: string): Promise<string> {
  const cmdFile = path.join(tmp, `cmds-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  writeFileSync(cmdFile, commands.join('\n') + '\n');
  const { stdout } = await run(['debugfs', '-f', cmdFile, image]);
  rmSync(cmdFile);
  return stdout;
}

/** Parses `ls -p` output: "/ino/mode/uid/gid/name/size/" lines (the name cannot contain "/"). */
function parseLsP(out: string): { ino: number; mode: number; uid: number; gid: number; name: string }[] {
  const res = [];
  for (const line of out.split('\n')) {
    if (!line.startsWith('/')) continue;
    const f = line.split('/');
    if (f.length < 7) continue;
    const name = f[5];
    if (name === '.' || name === '..' || name === '') continue;
    res.push({ ino: Number(f[1]), mode: parseInt(f[2], 8), uid: Number(f[3]), gid: Number(f[4]), name });
  }
  return res;
}

/** Walks the filesystem breadth-first, one debugfs process per directory level. */
async function listAll(image: string, tmp: string): Promise<Entry[]> {
  const all: Entry[] = [];
  let level: { ino: number; rel: string }[] = [{ ino: 2, rel: '' }];
  while (level.length) {
    const out = await debugfsBatch(image, level.map((d) => `ls -p <${d.ino}>`), tmp);
    // debugfs echoes each command as "debugfs: ls -p <ino>"; split the output per command
    const chunks = out.split(/^debugfs: ls -p <(\d+)>$/m);
    const byIno = new Map<number, string>();
    for (let i = 1; i < chunks.length; i += 2) byIno.set(Number(chunks[i]), chunks[i + 1] ?? '');
    const next: { ino: number; rel: string }[] = [];
    for (const d of level) {
      const listing = byIno.get(d.ino);
      if (listing === undefined) throw new Error(`debugfs: no listing for directory inode ${d.ino} (${d.rel || '/'})`);
      for (const e of parseLsP(listing)) {
        const rel = d.rel ? `${d.rel}/${e.name}` : e.name;
        all.push({ ino: e.ino, mode: e.mode, uid: e.uid, gid: e.gid, rel });
        if ((e.mode & S_IFMT) === S_IFDIR) next.push({ ino: e.ino, rel });
      }
    }
    level = next;
  }
  return all;
}

export interface UnpackReport {
  entries: number;
  hardLinks: number;
  devices: number;
  fifos: number;
  xattrs: number;
}

export async function unpackExt4(image: string, dest: string): Promise<UnpackReport> {
  mkdirSync(dest, { recursive: true });
  const tmp = mkdtempSync(path.join(path.dirname(dest), '.unpack-'));
  try {
    await run(['debugfs', '-R', `rdump / ${dest}`, image]);
    const entries = await listAll(image, tmp);
    const report: UnpackReport = { entries: entries.length, hardLinks: 0, devices: 0, fifos: 0, xattrs: 0 };

    // device numbers for special files
    const special = entries.filter((e) => [S_IFCHR, S_IFBLK].includes(e.mode & S_IFMT));
    const devNums = new Map<number, [number, number]>();
    if (special.length) {
      const out = await debugfsBatch(image, special.map((e) => `stat <${e.ino}>`), tmp);
      const parts = out.split(/^debugfs: stat <(\d+)>$/m);
      for (let i = 1; i < parts.length; i += 2) {
        const m = /Device major\/minor number:\s*(\d+):(\d+)/.exec(parts[i + 1] ?? '');
        if (m) devNums.set(Number(parts[i]), [Number(m[1]), Number(m[2])]);
      }
    }

    // extended attributes (skip system.data: ext4 inline-data bookkeeping)
    const xattrOut = await debugfsBatch(image, entries.filter((e) => (e.mode & S_IFMT) !== S_IFLNK).map((e) => `ea_list <${e.ino}>`), tmp);
    const xattrNames = new Map<number, string[]>();
    const xparts = xattrOut.split(/^debugfs: ea_list <(\d+)>$/m);
    for (let i = 1; i < xparts.length; i += 2) {
      const names = [...(xparts[i + 1] ?? '').matchAll(/^\s+(\S+) \(\d+\)/gm)].map((m) => m[1]).filter((n) => n !== 'system.data');
      if (names.length) xattrNames.set(Number(xparts[i]), names);
    }

    const firstPath = new Map<number, string>();
    for (const e of entries) {
      const full = path.join(dest, e.rel);
      const type = e.mode & S_IFMT;
      if (type === S_IFREG) {
        const first = firstPath.get(e.ino);
        if (first) {
          unlinkSync(full);
          linkSync(first, full);
          report.hardLinks++;
          continue; // metadata is the inode's, already applied
        }
        firstPath.set(e.ino, full);
      } else if (type === S_IFCHR || type === S_IFBLK) {
        const dn = devNums.get(e.ino);
        if (!dn) throw new Error(`unpack: no device number for /${e.rel}`);
        rmSync(full, { force: true });
        await run(['mknod', full, type === S_IFCHR ? 'c' : 'b', String(dn[0]), String(dn[1])]);
        report.devices++;
      } else if (type === S_IFIFO) {
        rmSync(full, { force: true });
        await run(['mkfifo', full]);
        report.fifos++;
      } else if (type === S_IFSOCK) {
        continue; // sockets are recreated by their daemons
      }
      lchownSync(full, e.uid, e.gid);
      if (type !== S_IFLNK) chmodSync(full, e.mode & 0o7777);
      for (const name of xattrNames.get(e.ino) ?? []) {
        const valFile = path.join(tmp, 'xattr');
        rmSync(valFile, { force: true });
        await debugfsBatch(image, [`ea_get -f ${valFile} <${e.ino}> ${name}`], tmp);
        const val = readFileSync(valFile);
        await run(['setfattr', '-h', '-n', name, '-v', `0s${val.toString('base64')}`, full]);
        report.xattrs++;
      }
    }
    // the root directory itself
    const rootInfo = await debugfsBatch(image, ['stat <2>'], tmp);
    const um = /User:\s*(\d+)\s+Group:\s*(\d+)/.exec(rootInfo);
    const mm = /Mode:\s*0?(\d+)/.exec(rootInfo);
    if (um) lchownSync(dest, Number(um[1]), Number(um[2]));
    if (mm) chmodSync(dest, parseInt(mm[1], 8) & 0o7777);
    // rdump keeps mtimes of files; the root's is left as is
    return report;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
