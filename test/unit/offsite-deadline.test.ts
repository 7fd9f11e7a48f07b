// The offsite phase's total deadline, decided purely from the inventory's schedule.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InventoryError, validateInventoryText } from '../../provision/inventory/validate.ts';
import { formatDuration, MAX_DEFAULT_DEADLINE_MS, OffsiteDeadlineError, offsiteDeadlineMs } from '../../runtime/offsite/deadline.ts';

const H = 3_600_000;
const root = new URL('../..', import.meta.url).pathname;
const example = JSON.parse(readFileSync(new URL('../../inventory.json', import.meta.url), 'utf8'));

async function problemsWith(deadlineMinutes: unknown): Promise<string> {
  const inv = structuredClone(example);
  inv.schedule.offsite.deadlineMinutes = deadlineMinutes;
  try {
    await validateInventoryText(JSON.stringify(inv), 'inventory.json', root);
    return '';
  } catch (e) {
    expect(e).toBeInstanceOf(InventoryError);
    return (e as Error).message;
  }
}

describe('offsite deadline', () => {
  it('deadlineMinutes wins, fractions included', () => {
    expect(offsiteDeadlineMs({ fullEveryDays: 30, incrementalEveryDays: 1, deadlineMinutes: 90 })).toBe(90 * 60_000);
    expect(offsiteDeadlineMs({ fullEveryDays: 30, deadlineMinutes: 0.25 })).toBe(15_000);
    expect(offsiteDeadlineMs({ fullEveryDays: 1, deadlineMinutes: 3000 })).toBe(50 * H);
  });

  it('by default: the upload interval, at most a day', () => {
    expect(MAX_DEFAULT_DEADLINE_MS).toBe(24 * H);
    expect(offsiteDeadlineMs({ fullEveryDays: 30, incrementalEveryDays: 1 })).toBe(24 * H);
    expect(offsiteDeadlineMs({ fullEveryDays: 30, incrementalEveryDays: 7 })).toBe(24 * H);
    expect(offsiteDeadlineMs({ fullEveryDays: 1 })).toBe(24 * H);
  });

  it('the message names the limit and the knob', () => {
    expect(new OffsiteDeadlineError(20_000).message).toMatch(/^the offsite deadline \(20 s, schedule\.offsite\.deadlineMinutes\) passed; nothing of this upload was recorded/);
    expect(formatDuration(90 * 60_000)).toBe('90 min');
    expect(formatDuration(24 * H)).toBe('24 h');
  });

  it('the inventory takes deadlineMinutes > 0, up to a week', async () => {
    expect(await problemsWith(0.5)).toBe('');
    expect(await problemsWith(10080)).toBe('');
    expect(await problemsWith(0)).toMatch(/schedule\.offsite\.deadlineMinutes/);
    expect(await problemsWith(20000)).toMatch(/schedule\.offsite\.deadlineMinutes/);
    expect(await problemsWith('1h')).toMatch(/schedule\.offsite\.deadlineMinutes/);
  });
});
