// provision-server, the plan: (server, Pi, its public key, templates, facts) → steps. Pure;
// the steps' check/apply run later against an Executor.
import type { PiSpec, ServerSpec } from '../../contract/inventory-schema.ts';
import { backupUser } from '../../contract/inventory-defaults.ts';
import { DISPATCH_PATH } from '../../contract/dispatch-protocol.ts';
import { absentDirStep, absentFileStep, dirStep, fileStep, pathFactsOf } from '../engine/files.ts';
import type { Step } from '../engine/types.ts';
import { ADMIN_DB_ENGINES } from './engines/index.ts';
import { factProblems, wantedGroups, type ServerFacts } from './facts.ts';
import { renderAuthorizedKeys, renderDispatcher, rootProblems, type ServerTemplates } from './render.ts';
import { absentUserStep, backupUserStep, groupsStep, type ServerCtx } from './steps.ts';

export interface ServerPlanInput {
  server: ServerSpec;
  /** position in inventory.servers, for field paths in messages */
  index: number;
  pi: PiSpec;
  /** the Pi's public key file text (required to install; unused to uninstall) */
  piPublicKey?: string;
  templates: ServerTemplates;
  facts: ServerFacts;
  mode: 'install' | 'uninstall';
}

export interface ServerPlan {
  /** non-empty: do nothing, print these (one line each) */
  problems: string[];
  steps: Step<ServerCtx>[];
  /** where things go, for messages and tests */
  paths: { home: string; sshDir: string; authorizedKeys: string; dispatcher: string };
}

function serverPaths(server: ServerSpec) {
  const home = `/home/${backupUser(server)}`;
  return { home, sshDir: `${home}/.ssh`, authorizedKeys: `${home}/.ssh/authorized_keys`, dispatcher: DISPATCH_PATH };
}

const exec = (ctx: ServerCtx) => ctx.exec;

export function planServer(input: ServerPlanInput): ServerPlan {
  const { server, index, facts, mode } = input;
  const paths = serverPaths(server);
  const user = backupUser(server);
  const s = server.name;
  const problems = [...factProblems(server, index, facts, mode)];
  // the managed paths' state, read once for all of them at the first check
  const paths_ = pathFactsOf(exec, [paths.home, paths.sshDir, paths.authorizedKeys, paths.dispatcher]);
  if (mode === 'uninstall') {
    if (problems.length) return { problems, steps: [], paths };
    const steps: Step<ServerCtx>[] = [
      absentFileStep(`${s}: ${paths.authorizedKeys}`, exec, paths_, paths.authorizedKeys),
      absentDirStep(`${s}: ${paths.sshDir}`, exec, paths_, paths.sshDir, { after: [`${s}: ${paths.authorizedKeys}`] }),
      absentFileStep(`${s}: ${paths.dispatcher}`, exec, paths_, paths.dispatcher),
    ];
    // whatever the inventory says now: an account made by an earlier run must go too
    for (const e of ADMIN_DB_ENGINES) if (facts.engines[e.name]?.running) steps.push(...(e.uninstallSteps?.(server, user) ?? []));
    steps.push(
      absentDirStep(`${s}: ${paths.home}`, exec, paths_, paths.home, { after: [`${s}: ${paths.sshDir}`] }),
      absentUserStep(`${s}: backup user ${user}`, user, { after: steps.map((x) => x.id) }),
    );
    return { problems, steps, paths };
  }

  problems.push(...rootProblems(server, index), ...ADMIN_DB_ENGINES.flatMap((e) => e.problems?.(server, index) ?? []));
  if (!input.piPublicKey) problems.push(`${s}: no public key for the Pi; run make provision-pi first, or pass --pi-public-key FILE`);
  let dispatcher = '';
  let authorizedKeys = '';
  try {
    dispatcher = renderDispatcher(input.templates, server);
    if (input.piPublicKey) authorizedKeys = renderAuthorizedKeys(input.templates, input.pi, input.piPublicKey);
  } catch (e) {
    problems.push(`${s}: ${(e as Error).message}`);
  }
  if (problems.length) return { problems, steps: [], paths };

  const userId = `${s}: backup user ${user}`;
  const groupsId = `${s}: groups of ${user}`;
  const steps: Step<ServerCtx>[] = [
    backupUserStep(userId, user, paths.home),
    dirStep(`${s}: ${paths.home}`, exec, paths_, { path: paths.home, mode: '755', owner: 'root', group: 'root' }, { after: [userId] }),
    groupsStep(groupsId, user, wantedGroups(server, facts), { after: [userId] }),
    fileStep(`${s}: ${paths.dispatcher}`, exec, paths_, {
      path: paths.dispatcher,
      content: dispatcher,
      mode: '755',
      owner: 'root',
      group: 'root',
      validate: (tmp) => ['sh', '-n', tmp],
    }),
    dirStep(`${s}: ${paths.sshDir}`, exec, paths_, { path: paths.sshDir, mode: '755', owner: 'root', group: 'root' }, { after: [`${s}: ${paths.home}`] }),
    fileStep(
      `${s}: ${paths.authorizedKeys}`,
      exec,
      paths_,
      { path: paths.authorizedKeys, content: authorizedKeys, mode: '644', owner: 'root', group: 'root' },
      // the key goes in only once the dispatcher it is forced into is in place
      { after: [`${s}: ${paths.sshDir}`, `${s}: ${paths.dispatcher}`] },
    ),
  ];
  for (const e of ADMIN_DB_ENGINES) steps.push(...e.installSteps({ server, user, userStep: userId, groupsStep: groupsId }));
  return { problems, steps, paths };
}
