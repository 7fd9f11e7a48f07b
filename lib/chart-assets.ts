// The chart library the report page carries inside itself: uPlot (MIT), its stylesheet and its
// license notice, read from node_modules when running from the source tree, and put into the
// runtime bundle at build time (provision/build-runtime.ts defines __PULLVAULT_UPLOT__), since
// the Pi has no node_modules.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

declare const __PULLVAULT_UPLOT__: string | undefined;

export interface ChartAssets {
  version: string;
  js: string;
  css: string;
  license: string;
}

export function readUplotFromNodeModules(): ChartAssets {
  const dir = dirname(createRequire(import.meta.url).resolve('uplot/package.json'));
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return { version: (JSON.parse(read('package.json')) as { version: string }).version, js: read('dist/uPlot.iife.min.js'), css: read('dist/uPlot.min.css'), license: read('LICENSE') };
}

export function chartAssets(): ChartAssets {
  return typeof __PULLVAULT_UPLOT__ === 'string' ? (JSON.parse(__PULLVAULT_UPLOT__) as ChartAssets) : readUplotFromNodeModules();
}
