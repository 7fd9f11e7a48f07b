// The lab: disposable isolated hosts (Linux namespaces, root only) used by `make demo` and by
// the tests. Nothing here changes the machine it runs on. See README.md.
export { startHost, type LabHost, type StartHostOptions, type ExecOptions, type LabService } from './host.ts';
export { startLabNetwork, type LabNetwork } from './network.ts';
export { seedDatabases, createDumpUser, SEEDED_ITEMS } from './seed.ts';
export { snapshotMachine, processesInNamespace, type MachineSnapshot } from './leftovers.ts';
export { run } from './env.ts';
export type { RunResult } from '../../lib/proc/index.ts';
export { LAB_ROOT, cleanStaleRunners } from './state.ts';

/** Lab hosts need root (namespaces, mounts). */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}
