// Test helpers for the offsite suites: real gpg keys in temporary homedirs, snapshot
// directories in the format of contract/disk-layout.ts built from a live "server" tree
// (cp -a, then a manifest computed from lstat), and an independent tree signature to compare
// restored trees with (does not use pullvault's own checker).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { vi } from 'vitest';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { pathFields, type ManifestEntry, type SnapshotInfo } from '../../contract/disk-layout.ts';

export interface TestKey {
  name: string;
  homedir: string;
  fingerprint: string;
  publicFile: string;
  secretFile: string;
  passphrase: string;
}

/** The ```sh NAME block of a Markdown file of the repository (exactly one): docs run as written. */
export function markdownBlock(file: string, name: string): string {
  const md = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '../..', file), 'utf8');
  const found = [...md.matchAll(/^```sh (\S+)\n([\s\S]*?)^```$/gm)].filter((m) => m[1] === name);
  if (found.length !== 1) throw new Error(`${file}: ${found.length} \`\`\`sh ${name} blocks, want 1`);
  return found[0][2];
}

export function genKey(dir: string, name: string, passphrase = ''): TestKey {
  const homedir = join(dir, `gnupg-${name}`);
  mkdirSync(homedir, { recursive: true, mode: 0o700 });
  const gpg = (args: string[], input?: string) =>
    execFileSync('gpg', ['--homedir', homedir, '--batch', '--pinentry-mode', 'loopback', '--passphrase', passphrase, ...args], { input, stdio: ['pipe', 'pipe', 'pipe'] });
  gpg(['--quick-gen-key', `${name} <${name}@pullvault.test>`, 'future-default', 'default', 'never']);
  const colons = gpg(['--with-colons', '--list-keys']).toString();
  const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(colons)![1];
  const publicFile = join(dir, `${name}.asc`);
  writeFileSync(publicFile, gpg(['--armor', '--export', fingerprint]));
  const secretFile = join(dir, `${name}.secret.asc`);
  writeFileSync(secretFile, gpg(['--armor', '--export-secret-keys', fingerprint]), { mode: 0o600 });
  return { name, homedir, fingerprint, publicFile, secretFile, passphrase };
}

/** A fresh folder for an offsite suite: `server/` (the source tree, created), and where the store and the Pi's data dir go. */
export function offsiteWorkspace(prefix: string): { work: string; src: string; store: string; data: string } {
  const work = mkdtempSync(join(tmpdir(), prefix));
  const src = join(work, 'server');
  mkdirSync(src);
  return { work, src, store: join(work, 'store'), data: join(work, 'data') };
}

/** The runtime config of a Pi whose offsite target is the folder `store`, encrypting to `recipients` (daily incrementals, a full every 30 days). */
export function dirTargetConfig(dataDir: string, store: string, keysDir: string, recipients: TestKey[]): RuntimeConfig {
  return {
    version: 1,
    paths: { dataDir, recipientKeysDir: keysDir, sshKeyFile: '/nonexistent', knownHostsFile: '/nonexistent' },
    inventory: {
      offsite: { type: 'dir', path: store },
      recipients: recipients.map((k) => ({ name: k.name, publicKeyFile: k.publicFile, fingerprint: k.fingerprint })),
      schedule: { pull: '0 * * * *', offsite: { fullEveryDays: 30, incrementalEveryDays: 1 } },
    },
  } as unknown as RuntimeConfig;
}

function walk(root: string, rel: Buffer, out: Buffer[]): void {
  const dir = Buffer.concat([Buffer.from(root + '/'), rel]);
  for (const name of readdirSync(dir, { encoding: 'buffer' })) {
    const r = rel.length ? Buffer.concat([rel, Buffer.from('/'), name]) : name;
    out.push(r);
    if (lstatSync(Buffer.concat([Buffer.from(root + '/'), r])).isDirectory()) walk(root, r, out);
  }
}

/** Manifest entries of a snapshot root (files/ and dumps/), sorted by path bytes; pinned to buildManifest's output by fixture-manifest.test.ts. */
export function computeManifest(snapDir: string): ManifestEntry[] {
  const paths: Buffer[] = [];
  for (const top of ['files', 'dumps']) {
    try {
      lstatSync(join(snapDir, top));
    } catch {
      continue;
    }
    // the top directory itself is an entry too, as buildManifest writes it
    const sub: Buffer[] = [Buffer.from(top)];
    walk(snapDir, Buffer.from(top), sub);
    paths.push(...sub);
  }
  paths.sort(Buffer.compare);
  const heads = new Map<string, Buffer>();
  const out: ManifestEntry[] = [];
  for (const p of paths) {
    const abs = Buffer.concat([Buffer.from(snapDir + '/'), p]);
    const st = lstatSync(abs);
    const e: ManifestEntry = {
      ...pathFields(p),
      t: st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f',
      s: st.isFile() ? st.size : 0,
      // whole seconds toward zero, as walk.ts keeps them (before 1970 too)
      m: Number(lstatSync(abs, { bigint: true }).mtimeNs / 1_000_000_000n),
      mode: st.mode & 0o7777,
      u: st.uid,
      g: st.gid,
    };
    if (st.isFile()) {
      e.h = createHash('sha256').update(readFileSync(abs)).digest('hex');
      if (st.nlink > 1) {
        const k = `${st.dev}:${st.ino}`;
        // as buildManifest writes it: the group's first path carries no hl, the others name it
        const head = heads.get(k);
        if (!head) heads.set(k, p);
        else {
          const hf = pathFields(head);
          e.hl = hf.p ?? hf.pb;
        }
      }
    }
    if (st.isSymbolicLink()) {
      const t = readlinkSync(abs, { encoding: 'buffer' });
      const f = pathFields(t);
      if (f.p !== undefined) e.l = f.p;
      else e.lb = f.pb;
    }
    out.push(e);
  }
  return out;
}

/** A complete snapshot <dataDir>/pullvault/snapshots/<server>/<id> of `source` (a server's tree). */
export function makeSnapshot(dataDir: string, server: string, id: string, source: string): string {
  const dir = join(dataDir, 'pullvault', 'snapshots', server, id);
  mkdirSync(join(dir, 'files'), { recursive: true });
  execFileSync('cp', ['-a', '--', `${source}/.`, join(dir, 'files')]);
  const manifest = computeManifest(dir);
  writeFileSync(join(dir, 'manifest.jsonl'), manifest.map((e) => JSON.stringify(e)).join('\n') + '\n');
  const files = manifest.filter((e) => e.t === 'f');
  const bytes = files.reduce((n, e) => n + e.s, 0);
  const info: SnapshotInfo = {
    version: 1, server, id, startedAt: new Date().toISOString(), finishedAt: new Date().toISOString(), partial: false, unreadable: [], dumps: [],
    stats: { files: files.length, bytes, hashedFiles: files.length, hashedBytes: bytes, seconds: 0 },
  };
  writeFileSync(join(dir, 'snapshot.json'), JSON.stringify(info));
  return dir;
}

/**
 * One line per entry under `root` (path as base64, type, mode, owner, mtime, size, sha256,
 * symlink target, hard-link group number): equal signatures = equal trees incl. metadata.
 */
export function treeSignature(root: string): string[] {
  const paths: Buffer[] = [];
  walk(root, Buffer.alloc(0), paths);
  paths.sort(Buffer.compare);
  const groups = new Map<string, number>();
  return paths.map((p) => {
    const abs = Buffer.concat([Buffer.from(root + '/'), p]);
    const st = lstatSync(abs);
    const t = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFile() ? 'f' : '?';
    let extra = '';
    if (t === 'f') {
      extra = `${st.size} ${createHash('sha256').update(readFileSync(abs)).digest('hex')}`;
      if (st.nlink > 1) {
        const k = `${st.ino}`;
        if (!groups.has(k)) groups.set(k, groups.size);
        extra += ` link#${groups.get(k)}/${st.nlink}`;
      }
    }
    if (t === 'l') extra = readlinkSync(abs, { encoding: 'buffer' }).toString('base64');
    const mode = t === 'l' ? '-' : (st.mode & 0o7777).toString(8);
    return `${p.toString('base64')} ${t} ${mode} ${st.uid}:${st.gid} ${Math.floor(st.mtimeMs / 1000)} ${extra}`;
  });
}

export const b = (s: string | Buffer) => (typeof s === 'string' ? Buffer.from(s) : s);

/** Runs `f` with stdout and stderr captured (the CLI entry points write there). */
export function quietly<T>(f: () => Promise<T>): Promise<{ value: T; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c) => ((out += String(c)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c) => ((err += String(c)), true));
  return f().finally(() => (o.mockRestore(), e.mockRestore())).then((value) => ({ value, out, err }));
}

/**
 * A deterministic SQL dump (≈ 90 bytes a row, ≈ 1/3 compressible like real data): row r's
 * values depend on `day` for about 1% of the rows, so consecutive days differ there only.
 */
export function sqlDump(rows: number, day: number): string {
  const out = ['-- MariaDB dump', 'CREATE TABLE t (id INT PRIMARY KEY, name TEXT, v INT, w TEXT);'];
  for (let r = 1; r <= rows; r++) {
    const gen = r % 100 === day % 100 ? day : 0;
    const a = Math.imul(r, 2654435761) >>> 0;
    const b = Math.imul(r ^ a, 40503 + gen) >>> 0;
    out.push(`INSERT INTO t VALUES (${r},'c-${a.toString(16)}${b.toString(36)}',${(a ^ b) % 100000},'${b.toString(16)}${a.toString(36)}');`);
  }
  return out.join('\n') + '\n';
}
