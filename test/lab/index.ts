// Tests reach the lab (provision/lab/) through here, plus `describeLab`.
import { describe } from 'vitest';
import { isRoot } from '../../provision/lab/index.ts';

export * from '../../provision/lab/index.ts';

/** `describe` for suites using lab hosts: `describe.skip` when not root (one line printed). */
export const describeLab = isRoot() ? describe : describe.skip;
if (!isRoot()) console.warn('lab suites need root; skipped');
