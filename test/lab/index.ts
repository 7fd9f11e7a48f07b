// Lab helper entry point: disposable isolated hosts for tests (root only). See README.md.
import { describe } from 'vitest';

export { startHost, type LabHost, type StartHostOptions, type ExecOptions, type LabService } from './host.ts';
export { startLabNetwork, type LabNetwork } from './network.ts';
export { seedDatabases, createDumpUser, SEEDED_ITEMS } from './seed.ts';
export { snapshotMachine, processesInNamespace, type MachineSnapshot } from './leftovers.ts';
export { run, RunError, type RunResult } from './proc.ts';
export { LAB_ROOT, cleanStaleRunners } from './state.ts';

/** Lab hosts need root (namespaces, mounts). */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** `describe` for suites using lab hosts: `describe.skip` when not root (one line printed). */
export const describeLab = isRoot() ? describe : describe.skip;
if (!isRoot()) console.warn('lab suites need root; skipped');
