// The runtime's configuration: the inventory itself (same schema, same types — no second
// definition) plus where things live on the Pi. install-runtime writes it as JSON (0600) after
// checking it here, and the runtime checks it here again when it loads it: one schema, one
// validator, the same readable lines on both sides.
import { readFile } from 'node:fs/promises';
import { Type, type Static } from '@sinclair/typebox';
import { InventorySchema } from './inventory-schema.ts';
import { schemaChecker } from './json-schema.ts';

const strict = { additionalProperties: false } as const;
const AbsPath = Type.String({ pattern: '^/', description: 'an absolute path' });

export const RuntimePathsSchema = Type.Object(
  {
    sshKeyFile: { ...AbsPath, description: "an absolute path (the Pi's private SSH key for pulling, on the encrypted root)" },
    knownHostsFile: { ...AbsPath, description: "an absolute path (the servers' pinned host keys, in OpenSSH known_hosts form)" },
    dataDir: { ...AbsPath, description: 'an absolute path (where the backup disk is mounted; the runtime refuses to run unless it is a mounted volume)' },
    awsCredentialsFile: Type.Optional({ ...AbsPath, description: "an absolute path (the S3 writer's credentials as JSON {accessKeyId, secretAccessKey}; s3 target only)" }),
    recipientKeysDir: { ...AbsPath, description: 'an absolute path (armored public keys of the recipients, by recipient name)' },
    runRecordFile: Type.Optional({ ...AbsPath, description: 'an absolute path (the record of the last run, on the root filesystem; default /var/lib/pullvault/last-run.json)' }),
  },
  strict,
);

export const RuntimeConfigSchema = Type.Object(
  {
    version: Type.Literal(1),
    inventory: InventorySchema,
    paths: RuntimePathsSchema,
    /** Lab and demo only: skip the check that dataDir is a separate mounted volume. Never set by install-runtime for a real Pi. */
    allowUnmountedDataDir: Type.Optional(Type.Boolean()),
    /**
     * Lab and demo only: accept a dataDir that is a mounted volume but not the dm-crypt mapper
     * (e.g. a tmpfs). Without it the mount must be /dev/mapper/<dataMapperName(pi)>, open.
     */
    allowUnencryptedDataDir: Type.Optional(Type.Boolean()),
    /** per-server connection override (lab: addresses inside the lab network) */
    connect: Type.Optional(
      Type.Record(Type.String(), Type.Object({ host: Type.String({ minLength: 1 }), port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })) }, strict)),
    ),
  },
  strict,
);

export type RuntimePaths = Static<typeof RuntimePathsSchema>;
export type RuntimeConfig = Static<typeof RuntimeConfigSchema>;

export const DEFAULT_CONFIG_PATH = '/etc/pullvault/config.json';

export class ConfigError extends Error {
  constructor(readonly file: string, readonly problems: string[]) {
    super(problems.map((p) => `${file}: ${p}`).join('\n'));
    this.name = 'ConfigError';
  }
}

const schemaProblems = schemaChecker(RuntimeConfigSchema);

/** Every problem of a runtime config, one line each; [] when the runtime can use it. */
export function runtimeConfigProblems(data: unknown): string[] {
  const invalid = schemaProblems(data);
  if (invalid.length) return invalid;
  const c = data as RuntimeConfig;
  const names = new Set(c.inventory.servers.map((s) => s.name));
  const problems = Object.keys(c.connect ?? {})
    .filter((n) => !names.has(n))
    .map((n) => `connect.${n}: no server of that name in inventory.servers`);
  if (c.inventory.offsite.type === 's3' && !c.paths.awsCredentialsFile)
    problems.push('paths.awsCredentialsFile: is required for an s3 offsite target (the writer credentials on the Pi)');
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
