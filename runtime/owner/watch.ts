// `pullvault watch`: the owner's watchdog (cron on the owner's machine or any small always-on
// host, with the read-only restore credentials and a private key). Reads the store, never the
// Pi: per server, the newest archive's age, the newest full's age, the newest chain complete and
// decryptable, the newest manifest's totals against the previous one (watch-judge.ts). Pings its
// own healthcheck URL and/or mails; exits 1 naming each failing server and the reason.
import { ping } from '../notify.ts';
import { mailOnFailure } from '../notify-mail.ts';
import { parseAt } from '../offsite/chain.ts';
import { UsageError, type OptionValues, type Options } from '../../lib/cli/args.ts';
import { decryptorFrom, readSourceConfig, SOURCE_OPTIONS, targetFrom } from '../offsite/commands.ts';
import { writeFileAtomic } from '../state.ts';
import { formatAge, formatBytes } from '../status.ts';
import { gatherServer } from './watch-gather.ts';
import { DEFAULT_DROP_RATIO, DEFAULT_SLACK_HOURS, judge, type ServerVerdict, type WatchPolicy } from './watch-judge.ts';

export const WATCH_HELP = `usage: pullvault watch --config FILE KEY [SOURCE] [options]

The owner's watchdog: reads the offsite store with the read-only restore credentials (never the Pi)
and checks, per server: the newest archive's age against the schedule; a full archive within
fullEveryDays (+ slack); the chain from that archive's full to it complete and decryptable (every
manifest, the newest archive and a sample of the others, or all with --read-data: downloaded,
decrypted, checked against the checksum in their manifest); the newest manifest's totals against the
previous one (a drop of more than half the files or bytes is flagged). Meant for cron.

  --config FILE       inventory.json or the Pi's config.json: servers, schedule, offsite target
  SOURCE              as restore: --target dir:PATH | s3://BUCKET/PREFIX/ [--region R] [--endpoint URL],
                      --credentials FILE (read-only S3 credentials as JSON)
  KEY                 --gpg-homedir DIR | --key FILE [--passphrase-file FILE]
  --server NAME       only this server (repeatable; default: every server in the config)
  --read-data         read every archive of each newest chain (default: the newest and --sample - 1 others)
  --sample N          archives read per server without --read-data (default 2)
  --slack-hours H     added to every expected interval (default ${DEFAULT_SLACK_HOURS})
  --now TIME          judge as of TIME (2024-05-01T12:00:00Z; default: now)
  --healthcheck URL   ping URL on success, URL/fail with the findings on failure (its own check, not the Pi's)
  --mail-to ADDR      mail the findings on failure (sendmail -t)
  --json              print the verdicts as JSON
  --save FILE         also write the verdicts as JSON (for pullvault report --watch FILE)

exit codes: 0 every server ok; 1 a check failed (each failing server and reason on stderr); 2 usage`;

export interface WatchReport {
  pullvault: 'watch';
  v: 1;
  at: string;
  store: string;
  ok: boolean;
  servers: ServerVerdict[];
}

export function renderWatch(r: WatchReport): string {
  const rows = [['SERVER', 'STATE', 'NEWEST', 'AGE', 'FULL AGE', 'CHAIN', 'FILES', 'SIZE', 'READ']];
  for (const s of r.servers) {
    rows.push([
      s.server,
      s.ok ? 'ok' : 'FAILED',
      s.newest ? `${s.newest.snapshot} ${s.newest.kind === 'full' ? 'full' : 'incr'}` : '-',
      s.newest ? formatAge(s.newest.ageHours * 3_600_000) : '-',
      s.full ? formatAge(s.full.ageDays * 86_400_000) : '-',
      s.chain ? `${s.chain.archives}${s.chain.complete ? '' : ' BROKEN'}` : '-',
      s.totals ? String(s.totals.files) : '-',
      s.totals ? formatBytes(s.totals.bytes) : '-',
      `${s.checked.manifests}m ${s.checked.archives}a`,
    ]);
  }
  const w = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  const lines = [`watch ${r.store} as of ${r.at}: ${r.ok ? 'ok' : 'FAILED'}`, ...rows.map((row) => row.map((cell, c) => cell.padEnd(w[c])).join('  ').trimEnd())];
  for (const s of r.servers) for (const f of s.findings) lines.push(`${s.server}: ${f.level === 'error' ? 'FAILED' : 'warning'}: ${f.check}: ${f.message}`);
  return lines.join('\n') + '\n';
}

/** One line per failing server, for stderr, the ping and the mail. */
export function failureLines(r: WatchReport): string[] {
  return r.servers.filter((s) => !s.ok).map((s) => `${s.server}: ${s.findings.filter((f) => f.level === 'error').map((f) => `${f.check}: ${f.message}`).join('; ')}`);
}

export const WATCH_OPTIONS = {
  ...SOURCE_OPTIONS,
  server: { type: 'string', multiple: true },
  'read-data': { type: 'boolean' },
  sample: { type: 'string' },
  'slack-hours': { type: 'string' },
  now: { type: 'string' },
  healthcheck: { type: 'string' },
  'mail-to': { type: 'string' },
  json: { type: 'boolean' },
  save: { type: 'string' },
} as const satisfies Options;

/** `pullvault watch` with its parsed options: 0 every server ok, 1 a check failed (each named on stderr). */
export async function watch(o: OptionValues<typeof WATCH_OPTIONS>, err: (s: string) => void): Promise<number> {
  if (!o.config) throw new UsageError('--config FILE is required (the servers and the schedule come from it)');
  const num = (name: string, v: string | undefined, dflt: number, min: number) => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name}: expected a number ≥ ${min}, got ${v}`);
    return n;
  };
  const sample = num('sample', o.sample, 2, 1);
  const slackHours = num('slack-hours', o['slack-hours'], DEFAULT_SLACK_HOURS, 0);
  let now: Date;
  try {
    now = o.now ? parseAt(o.now) : new Date();
  } catch (e) {
    throw new UsageError(`--now: ${(e as Error).message.replace(/^--at: /, '')}`);
  }
  const source = await readSourceConfig(o.config);
  const { inventory } = source;
  const names = inventory.servers.map((s) => s.name);
  for (const s of o.server ?? []) if (!names.includes(s)) throw new UsageError(`--server ${s}: not in ${o.config} (${names.join(', ')})`);
  const sched = inventory.schedule.offsite;
  const policy: WatchPolicy = { fullEveryDays: sched.fullEveryDays, incrementalEveryDays: sched.incrementalEveryDays, slackHours, dropRatio: DEFAULT_DROP_RATIO };

  const target = await targetFrom(o, source);
  const report: WatchReport = { pullvault: 'watch', v: 1, at: now.toISOString(), store: target.label, ok: true, servers: [] };
  try {
    const decryptor = await decryptorFrom(o);
    for (const server of o.server ?? names) {
      const { evidence, plan } = await gatherServer(target, server, { decryptor, readData: o['read-data'] === true, sample, log: err, tmpDir: o.tmpdir });
      report.servers.push(judge(evidence, plan, policy, now));
    }
  } finally {
    target.close();
  }
  report.ok = report.servers.every((s) => s.ok);
  if (o.save) await writeFileAtomic(o.save, JSON.stringify(report, null, 2) + '\n');
  process.stdout.write(o.json ? JSON.stringify(report, null, 2) + '\n' : renderWatch(report));
  const failures = failureLines(report);
  for (const l of failures) err(`pullvault watch: ${l}`);
  const summary = report.ok ? `ok: ${report.servers.map((s) => `${s.server} ${s.newest?.snapshot}`).join(', ')}` : failures.join('\n');
  await ping(o.healthcheck, report.ok ? 'success' : 'fail', summary, err);
  if (!report.ok && o['mail-to']) {
    const r = await mailOnFailure(o['mail-to'], `pullvault watch: ${report.servers.filter((s) => !s.ok).map((s) => s.server).join(', ')} FAILED`, renderWatch(report));
    if (!r.sent && r.reason !== 'cron-mails') err(`warning: mail to ${o['mail-to']}: ${r.detail ?? r.reason}`);
  }
  return report.ok ? 0 : 1;
}
