// Opens a report page in real headless Chromium (playwright-core driving the machine's chromium,
// a fresh profile, no network) and says what a person would see: console errors, requests the
// page tried, and per chart how many canvas pixels carry each series' colour. Saves a screenshot.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { chromiumBinary } from '../../provision/recovery-kit/write.ts';

export interface ChartSeen {
  server: string | null;
  chart: string;
  /** colour (#rrggbb) → pixels within ±24 per channel of it */
  pixels: Record<string, number>;
  width: number;
  height: number;
}

export interface PageSeen {
  consoleErrors: string[];
  /** anything the page asked for beyond its own file */
  requests: string[];
  rendered: boolean;
  charts: ChartSeen[];
  /** text of chart boxes that had nothing to draw */
  empty: string[];
  text: string;
}

export async function viewReport(htmlFile: string, screenshot: string, colors: string[]): Promise<PageSeen> {
  const profile = mkdtempSync(join(tmpdir(), 'pv-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumBinary(),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    viewport: { width: 1100, height: 900 },
    timeout: 60_000,
  });
  const seen: PageSeen = { consoleErrors: [], requests: [], rendered: false, charts: [], empty: [], text: '' };
  try {
    const page = await ctx.newPage();
    const own = pathToFileURL(htmlFile).href;
    page.on('console', (m) => {
      if (m.type() === 'error') seen.consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => seen.consoleErrors.push(`pageerror: ${e.message}`));
    await ctx.route('**/*', (route) => {
      const url = route.request().url();
      if (url === own) return route.continue();
      seen.requests.push(url);
      return route.abort();
    });
    await page.goto(own, { waitUntil: 'load', timeout: 60_000 });
    await page.waitForSelector('body[data-rendered="yes"]', { timeout: 30_000 }).catch(() => undefined);
    seen.rendered = (await page.getAttribute('body', 'data-rendered')) === 'yes';
    const rgb = colors.map((c) => [c, parseInt(c.slice(1, 3), 16), parseInt(c.slice(3, 5), 16), parseInt(c.slice(5, 7), 16)] as const);
    seen.charts = await page.evaluate((want) => {
      const out: { server: string | null; chart: string; pixels: Record<string, number>; width: number; height: number }[] = [];
      for (const box of Array.from(document.querySelectorAll('[data-chart]'))) {
        const canvas = box.querySelector('canvas');
        if (!canvas) continue;
        const ctx2 = canvas.getContext('2d')!;
        const img = ctx2.getImageData(0, 0, canvas.width, canvas.height).data;
        const pixels: Record<string, number> = {};
        for (const [c] of want) pixels[c] = 0;
        for (let i = 0; i < img.length; i += 4) {
          if (img[i + 3] < 200) continue;
          for (const [c, r, g, b] of want) if (Math.abs(img[i] - r) <= 24 && Math.abs(img[i + 1] - g) <= 24 && Math.abs(img[i + 2] - b) <= 24) pixels[c]++;
        }
        out.push({ server: box.closest('[data-server]')?.getAttribute('data-server') ?? null, chart: box.getAttribute('data-chart')!, pixels, width: canvas.width, height: canvas.height });
      }
      return out;
    }, rgb as unknown as [string, number, number, number][]);
    seen.empty = await page.$$eval('[data-chart] .empty', (els) => els.map((e) => e.textContent ?? ''));
    seen.text = await page.innerText('body');
    await page.screenshot({ path: screenshot, fullPage: true });
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
  return seen;
}
