// config.json's schema: the inventory itself (same schema, same types — no second definition)
// plus where things live on the Pi. Checked by contract/runtime-config.ts.
import { Type, type Static } from '@sinclair/typebox';
import { InventorySchema } from './inventory-schema.ts';

const strict = { additionalProperties: false } as const;
const AbsPath = Type.String({ pattern: '^/', description: 'an absolute path' });

const RuntimePathsSchema = Type.Object(
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
