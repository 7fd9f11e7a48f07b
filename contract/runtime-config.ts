// The runtime's configuration, config.json: the inventory plus where things live on the Pi
// (schema in runtime-config-schema.ts). install-runtime writes it as JSON (0600) after checking
// it here, and the runtime checks it here again when it loads it: one schema, one validator,
// the same readable lines on both sides.
import { readFile } from 'node:fs/promises';
import { needsCredentialsFile } from './offsite-kinds.ts';
import { runtimeConfigSchemaProblems } from './runtime-config-check.ts';
import type { RuntimeConfig } from './runtime-config-schema.ts';

export type { RuntimeConfig, RuntimePaths } from './runtime-config-schema.ts';

export const DEFAULT_CONFIG_PATH = '/etc/pullvault/config.json';

export class ConfigError extends Error {
  constructor(readonly file: string, readonly problems: string[]) {
    super(problems.map((p) => `${file}: ${p}`).join('\n'));
    this.name = 'ConfigError';
  }
}

/** Every problem of a runtime config, one line each; [] when the runtime can use it. */
export function runtimeConfigProblems(data: unknown): string[] {
  const invalid = runtimeConfigSchemaProblems(data);
  if (invalid.length) return invalid;
  const c = data as RuntimeConfig;
  const names = new Set(c.inventory.servers.map((s) => s.name));
  const problems = Object.keys(c.connect ?? {})
    .filter((n) => !names.has(n))
    .map((n) => `connect.${n}: no server of that name in inventory.servers`);
  if (needsCredentialsFile(c.inventory.offsite) && !c.paths.awsCredentialsFile)
    problems.push(`paths.awsCredentialsFile: is required for an ${c.inventory.offsite.type} offsite target (the writer credentials on the Pi)`);
  return problems;
}

/** The config if it is valid; throws ConfigError naming `file` and every problem otherwise. */
export function checkRuntimeConfig(data: unknown, file: string): RuntimeConfig {
  const problems = runtimeConfigProblems(data);
  if (problems.length) throw new ConfigError(file, problems);
  return data as RuntimeConfig;
}

export function parseRuntimeConfig(text: string, file: string): RuntimeConfig {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, [`not valid JSON: ${(e as Error).message}`]);
  }
  return checkRuntimeConfig(data, file);
}

export async function readRuntimeConfig(file: string): Promise<RuntimeConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [`cannot read config: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`]);
  }
  return parseRuntimeConfig(text, file);
}
