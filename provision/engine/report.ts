// Rendering of plans and results for people. Kept apart from running them (the engine
// only emits events), so tests can read the text and a JSON reporter could replace it.
import { createTwoFilesPatch } from 'diff';
import type { Change, RunSummary, StepStatus } from './types.ts';
import type { Redactor } from './redact.ts';

export interface Reporter {
  step(id: string, status: StepStatus | 'would change', change?: Change, error?: string, sensitive?: boolean): void;
  line(text: string): void;
  summary(s: RunSummary): void;
}

function renderDiff(before: string | undefined, after: string | undefined): string {
  const patch = createTwoFilesPatch('current', 'wanted', before ?? '', after ?? '', '', '', { context: 2 });
  // drop the "Index/====" header lines; keep ---/+++ and hunks
  return patch
    .split('\n')
    .filter((l) => !l.startsWith('Index:') && !l.startsWith('====='))
    .join('\n')
    .trimEnd();
}

function summaryLine(s: RunSummary): string {
  const parts = [`${s.ok} ok`, `${s.changed} ${s.dryRun ? 'to change' : 'changed'}`, `${s.failed} failed`];
  if (s.skipped) parts.push(`${s.skipped} skipped`);
  return parts.join(', ');
}

export class TextReporter implements Reporter {
  constructor(
    private readonly redactor: Redactor,
    private readonly write: (text: string) => void = (t) => process.stdout.write(t),
    private readonly showDiffs = true,
  ) {}

  line(text: string): void {
    this.write(this.redactor.mask(text) + '\n');
  }

  step(id: string, status: StepStatus | 'would change', change?: Change, error?: string, sensitive?: boolean): void {
    const label = status.padEnd(12);
    const what = change ? ` (${change.action}${change.summary ? `: ${change.summary}` : ''})` : '';
    this.line(`${label} ${id}${what}${error ? `\n             ${error}` : ''}`);
    if (change && this.showDiffs && (status === 'would change' || status === 'changed')) {
      if (sensitive) this.line('             (sensitive: contents not shown)');
      else if (change.before !== undefined || change.after !== undefined)
        this.line(renderDiff(change.before, change.after).replace(/^/gm, '             '));
    }
  }

  summary(s: RunSummary): void {
    this.line(summaryLine(s));
  }
}
