// `pullvault report` from a real multi-day lab history, in real headless Chromium. A lab "pi"
// pulls a lab server six times, a day apart on the runtime's clock (report-run.ts), uploading to a
// folder target on the schedule (a full, then daily incrementals); one run cannot reach the
// server (failed), one finds a file it may not read (partial). Then, on the pi: the run history
// is there, bounded, one line per run; `pullvault watch --save` judges the store; `pullvault
// report` writes the page from the Pi's history, and again from the store (the owner's side).
// Both pages load in Chromium with no console error and no request, every chart draws its
// series (pixels of each series' colour on its canvas), and a screenshot of each is kept in
// test-artifacts/report/ (gitignored).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { HistoryEntry } from '../../runtime/history.ts';
import { COLORS } from '../../runtime/owner/report/render.ts';
import type { WatchReport } from '../../runtime/owner/watch.ts';
import { describeLab, startHost, startLabNetwork, type LabHost, type LabNetwork } from '../lab/index.ts';
import { CONFIG, DATA_DIR, labConfig, provisionLabServer, REPO, serverSpec } from './pull-lab.ts';
import { viewReport, type PageSeen } from './report-browser.ts';

const ARTIFACTS = join(fileURLToPath(new URL('../..', import.meta.url)), 'test-artifacts', 'report');
const GNUPG = '/root/owner-gnupg';
const OFFSITE = '/srv/offsite';
const BAD_CONFIG = '/etc/pullvault/config-unreachable.json';
const cli = (...args: string[]) => [`${REPO}/node_modules/.bin/tsx`, `${REPO}/runtime/main.ts`, ...args];

describeLab('pullvault report: a multi-day lab history in headless Chromium', () => {
  let net: LabNetwork;
  let pi: LabHost;
  let web: LabHost;
  const runs: { day: number; code: number }[] = [];
  let history: HistoryEntry[];
  let lastDay: Date;

  const run = async (day: number, config = CONFIG) => {
    const r = await pi.exec([`${REPO}/node_modules/.bin/tsx`, `${REPO}/test/integration/report-run.ts`, config, String(day)], { okCodes: [0, 1, 4] });
    if (process.env.PV_DEBUG) console.log(day, r.code, r.stdout, r.stderr);
    runs.push({ day, code: r.code });
    return r;
  };
  /** The server's data changes a little every day. */
  const change = (day: number) =>
    web.exec(['bash', '-c', 'set -e; cd /srv/data; head -c $((200000 + $1 * 150000)) /dev/urandom > "new-$1.bin"; date > stamp.txt; for i in $(seq 1 $((5 * $1))); do echo "$1 $i" > "notes-$1-$i.txt"; done', 'c', String(day)]);

  beforeAll(async () => {
    net = await startLabNetwork({ subnet: '10.221.0.0/24' });
    [pi, web] = await Promise.all([startHost({ name: 'pi', network: net }), startHost({ name: 'web1', network: net, services: ['sshd'] })]);
    await pi.exec(['sh', '-c', `mkdir -p /etc/pullvault/keys ${DATA_DIR} ${OFFSITE} && ssh-keygen -q -t ed25519 -N '' -C pi -f /etc/pullvault/id_ed25519 && mount -t tmpfs -o size=200m,mode=0755 backupdisk ${DATA_DIR}`]);
    // the owner's key, made in the pi (the owner's side runs there too, with the folder target)
    await pi.exec(['bash', '-c', `set -e; mkdir -m 700 ${GNUPG}; gpg --homedir ${GNUPG} --batch --pinentry-mode loopback --passphrase '' --quick-gen-key 'owner <owner@pullvault.test>' future-default default never 2>/dev/null; gpg --homedir ${GNUPG} --armor --export > /etc/pullvault/keys/owner.asc`]);
    const fpr = /^fpr:+([0-9A-F]{40}):/m.exec((await pi.exec(['gpg', '--homedir', GNUPG, '--with-colons', '--list-keys'])).stdout)![1];
    // the second recipient the inventory requires (the escrow key); its secret half is not needed here
    await pi.exec(['bash', '-c', `set -e; mkdir -m 700 /root/escrow-gnupg; gpg --homedir /root/escrow-gnupg --batch --pinentry-mode loopback --passphrase '' --quick-gen-key 'escrow <escrow@pullvault.test>' future-default default never 2>/dev/null; gpg --homedir /root/escrow-gnupg --armor --export > /etc/pullvault/keys/escrow.asc`]);
    const escrowFpr = /^fpr:+([0-9A-F]{40}):/m.exec((await pi.exec(['gpg', '--homedir', '/root/escrow-gnupg', '--with-colons', '--list-keys'])).stdout)![1];
    const piPub = (await pi.readFile('/etc/pullvault/id_ed25519.pub')).toString().trim().split(' ').slice(0, 2).join(' ');
    const spec = serverSpec(web, [{ path: '/srv/data' }]);
    await provisionLabServer(web, spec, piPub, pi.address!);
    await web.exec(['bash', '-c', 'mkdir -p /srv/data && head -c 3000000 /dev/urandom > /srv/data/base.bin && echo hello > /srv/data/a.txt']);
    await pi.writeFile('/etc/pullvault/known_hosts', `${web.address} ${web.hostKey}\n`);
    const base = labConfig([spec]);
    const config = {
      ...base,
      inventory: {
        ...base.inventory,
        offsite: { type: 'dir' as const, path: OFFSITE },
        recipients: [
          { name: 'owner', publicKeyFile: 'owner.asc', fingerprint: fpr },
          { name: 'escrow', publicKeyFile: 'escrow.asc', fingerprint: escrowFpr },
        ],
        schedule: { pull: '0 2 * * *', offsite: { fullEveryDays: 7, incrementalEveryDays: 1 } },
        pi: { ...base.inventory.pi, dataDisk: { ...base.inventory.pi.dataDisk, minFreeMiB: 1 } },
      },
    };
    await pi.writeFile(CONFIG, JSON.stringify(config, null, 2), { mode: 0o600 });
    // the same Pi on a day the server does not answer (nothing listens on port 1)
    await pi.writeFile(BAD_CONFIG, JSON.stringify({ ...config, connect: { web1: { host: web.address!, port: 1 } } }, null, 2), { mode: 0o600 });
  }, 300_000);

  afterAll(async () => {
    await Promise.all([pi, web].filter(Boolean).map((h) => h.stop()));
    await net?.stop();
  });

  it('six runs a day apart: ok, ok, failed (server unreachable), partial (a file it may not read), ok, ok; one history line each', async () => {
    for (const day of [0, 1, 2, 3, 4, 5]) {
      await change(day);
      if (day === 3) await web.exec(['bash', '-c', 'echo secret > /srv/data/root-only.txt && chmod 600 /srv/data/root-only.txt']);
      if (day === 4) await web.exec(['rm', '/srv/data/root-only.txt']);
      await run(day, day === 2 ? BAD_CONFIG : CONFIG);
    }
    expect(runs.map((r) => r.code)).toEqual([0, 0, 1, 4, 0, 0]);
    const text = (await pi.readFile('/var/lib/pullvault/history.jsonl')).toString();
    history = text.trim().split('\n').map((l) => JSON.parse(l) as HistoryEntry);
    expect(history.map((h) => h.outcome)).toEqual(['ok', 'ok', 'failed', 'partial', 'ok', 'ok']);
    expect(history[2].servers).toEqual([expect.objectContaining({ server: 'web1', ok: false, error: expect.any(String) })]);
    expect(history[2].servers[0].snapshot).toBeUndefined();
    expect(history[3].servers[0]).toMatchObject({ ok: true, partial: true });
    // the first pull read everything, later ones only what changed
    expect(history[0].servers[0].hashedBytes).toBeGreaterThan(3_000_000);
    expect(history[1].servers[0].hashedBytes!).toBeLessThan(history[0].servers[0].hashedBytes! / 4);
    const days = history.map((h) => Date.parse(h.startedAt));
    for (let i = 1; i < days.length; i++) expect((days[i] - days[i - 1]) / 86_400_000).toBeCloseTo(1, 1);
    lastDay = new Date(days[5]);
    const uploads = (await pi.readFile(`${DATA_DIR}/pullvault/state/uploads.jsonl`)).toString().trim().split('\n').map((l) => JSON.parse(l) as { kind: string });
    expect(uploads.map((u) => u.kind)).toEqual(['full', 'incremental', 'incremental', 'incremental', 'incremental']);
  }, 600_000);

  it('the watchdog judges the store ok as of the last run, and saves its verdicts', async () => {
    const r = await pi.exec(cli('watch', '--config', CONFIG, '--gpg-homedir', GNUPG, '--now', new Date(lastDay.getTime() + 3_600_000).toISOString(), '--save', '/root/watch.json'), { okCodes: [0, 1] });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^web1 +ok +\d{8}T\d{6}Z incr +/m);
    const w = JSON.parse((await pi.readFile('/root/watch.json')).toString()) as WatchReport;
    expect(w.servers[0]).toMatchObject({ ok: true, chain: { archives: 5, complete: true } });
  }, 300_000);

  const pages: Record<string, { file: string; seen: PageSeen }> = {};

  it.each([
    ['pi', ['--from', 'pi']],
    ['store', ['--from', 'store', '--gpg-homedir', GNUPG]],
  ])('the report from the %s renders in Chromium: no console error, no request, every chart drawn', async (name, args) => {
    const out = `/root/report-${name}.html`;
    const r = await pi.exec(cli('report', '--config', CONFIG, '--watch', '/root/watch.json', '--out', out, ...args), { okCodes: [0, 1, 2] });
    expect(r.code, r.stderr).toBe(0);
    mkdirSync(ARTIFACTS, { recursive: true });
    const file = join(ARTIFACTS, `report-${name}.html`);
    writeFileSync(file, await pi.readFile(out));
    const shot = join(ARTIFACTS, `report-${name}.png`);
    const seen = await viewReport(file, shot, Object.values(COLORS));
    pages[name] = { file, seen };
    expect(seen.consoleErrors).toEqual([]);
    expect(seen.requests).toEqual([]);
    expect(seen.rendered).toBe(true);
    expect(seen.empty).toEqual([]);
    const drawn = (chart: string) => seen.charts.find((c) => c.chart === chart && c.server === (chart === 'runs' ? null : 'web1'));
    const want: Record<string, (keyof typeof COLORS)[]> = { size: ['size', 'files'], pulled: ['pulled', 'pullSeconds'], uploads: ['full', 'incremental'] };
    if (name === 'pi') want.runs = ['runSeconds', 'failed', 'partial'];
    for (const [chart, series] of Object.entries(want)) {
      const c = drawn(chart);
      expect(c, `chart ${chart}`).toBeDefined();
      for (const s of series) expect(c!.pixels[COLORS[s]], `${chart}: ${s} (${COLORS[s]})`).toBeGreaterThan(20);
    }
    expect(seen.text).toMatch(/Watchdog \(.*\): ok/);
    expect(seen.text).toContain('Charts drawn with uPlot');
    if (name === 'pi') {
      expect(seen.text).toMatch(/Runs: 6 \(2 not ok\)/);
      expect(seen.text).toMatch(/failed\s+failed: web1/);
    } else expect(seen.text).toMatch(/newest snapshot \d{8}T\d{6}Z: \d+ files/);
  }, 300_000);
});
