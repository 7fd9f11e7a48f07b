// The DbEngine seam, provision-server's half: what an engine needs on a server (programs, a ping
// as its admin: facts read before planning), what it judges in the inventory, the steps that give
// the backup user access (and take it away), and the values of its dispatcher fragment
// (templates/server/dispatch-<name>.hbs). The contract half is contract/db-engine.ts.
import type { ServerSpec } from '../../../contract/inventory-schema.ts';
import type { DbEngineName } from '../../../contract/db-engines.ts';
import type { ExecCtx, Step } from '../../engine/types.ts';

export interface EngineFact {
  /** client and server programs are there */
  installed: boolean;
  /** the server answers as its admin (root via unix_socket / postgres via peer); true for an engine without a server */
  running: boolean;
  /** why not, when not */
  detail?: string;
}

/** Where an engine's steps hang in the server's plan. */
export interface EngineStepContext {
  server: ServerSpec;
  /** the backup user's name */
  user: string;
  /** ids of the steps that make the user, and give it its groups */
  userStep: string;
  groupsStep: string;
}

export interface AdminDbEngine {
  name: DbEngineName;
  /** programs it needs on the server, probed with the rest */
  programs: readonly string[];
  /** argv that succeeds when the engine's server answers its admin; absent: no server to ask (files) */
  ping?: readonly string[];
  /** the Debian package that brings it */
  package: string;
  /** problems with servers[index].databases.<name>, one line each (nothing is changed then) */
  problems?(server: ServerSpec, index: number): string[];
  /** the steps that give the backup user what the dispatcher's verbs need, in order */
  installSteps(at: EngineStepContext): Step<ExecCtx>[];
  /** the steps that remove what installSteps made (run when the engine answers, whatever the inventory says now) */
  uninstallSteps?(server: ServerSpec, user: string): Step<ExecCtx>[];
  /** its dispatcher fragment's values, shell-quoted (the fragment of an engine the server leaves off gets its "off" value) */
  dispatcherVars(server: ServerSpec): Record<string, string>;
}
