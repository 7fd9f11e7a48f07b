// Lab driver: one `pullvault run` through the runtime's own runCycle (pull, room-making,
// retention, status) with its clock moved on by HOURS, so hourly retention rules have hours to
// work on in a test that lasts seconds. The clock is runCycle's `now` seam; nothing else differs
// from `pullvault run --no-offsite --server NAME…`.
// usage: tsx space-run.ts CONFIG HOURS SERVER…
import { readFile } from 'node:fs/promises';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { runCycle } from '../../runtime/cycle.ts';

const [configPath, hours, ...only] = process.argv.slice(2);
const config = JSON.parse(await readFile(configPath, 'utf8')) as RuntimeConfig;
const shiftMs = Number(hours) * 3_600_000;
const r = await runCycle(config, {
  log: (s) => process.stdout.write(`${s}\n`),
  warn: (s) => process.stderr.write(`${s}\n`),
  now: () => new Date(Date.now() + shiftMs),
  only,
});
process.exit(r.exitCode);
