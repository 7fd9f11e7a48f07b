// Lab processes run with a minimal, predictable environment: nothing from the test runner leaks into lab hosts.
import { createProc } from '../../lib/proc/index.ts';

export const BASE_ENV: Record<string, string> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LANG: 'C.UTF-8',
};

export const { run } = createProc({ env: BASE_ENV });
