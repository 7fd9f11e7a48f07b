// Writes the kit: the HTML page and its PDF (headless Chromium's print-to-PDF) into a 0700 folder,
// files 0600. Chromium's profile lives inside that folder while it prints and is removed after, so
// no copy of the page is left in a cache elsewhere.
import { chmodSync, existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ensureDir } from '../image/secrets.ts';
import { CommandError, run } from '../../lib/proc/index.ts';

const KIT_HTML = 'recovery-kit.html';
const KIT_PDF = 'recovery-kit.pdf';

export const recoveryKitDir = (stateDir: string): string => path.join(stateDir, 'recovery-kit');

/** The browser: $CHROMIUM, or the first of chromium / chromium-browser / google-chrome on PATH. */
export function chromiumBinary(): string {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    for (const name of ['chromium', 'chromium-browser', 'google-chrome']) if (dir && existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  throw new Error('no Chromium found for the PDF (apt-get install chromium, or CHROMIUM=/path/to/chrome)');
}

function writePrivate(file: string, data: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export async function printToPdf(htmlFile: string, pdfFile: string): Promise<void> {
  const profile = mkdtempSync(path.join(path.dirname(pdfFile), '.chromium-'));
  const tmp = `${pdfFile}.tmp-${process.pid}`;
  try {
    await run(
      [
        chromiumBinary(), '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
        `--user-data-dir=${profile}`, '--no-pdf-header-footer', '--print-to-pdf-no-header', `--print-to-pdf=${tmp}`, pathToFileURL(htmlFile).href,
      ],
      { timeoutMs: 120_000 },
    );
    if (!existsSync(tmp)) throw new Error(`Chromium wrote no PDF for ${htmlFile}`);
    chmodSync(tmp, 0o600);
    renameSync(tmp, pdfFile);
  } catch (e) {
    rmSync(tmp, { force: true });
    if (e instanceof CommandError) throw new Error(`printing the kit to PDF failed: ${e.message.split('\n').slice(0, 2).join(' ')}`);
    throw e;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

/** Writes <dir>/recovery-kit.html and .pdf; returns their paths. */
export async function writeKit(dir: string, html: string): Promise<{ html: string; pdf: string }> {
  ensureDir(path.dirname(dir));
  ensureDir(dir);
  const htmlFile = path.join(dir, KIT_HTML);
  const pdfFile = path.join(dir, KIT_PDF);
  writePrivate(htmlFile, html);
  await printToPdf(htmlFile, pdfFile);
  return { html: htmlFile, pdf: pdfFile };
}
