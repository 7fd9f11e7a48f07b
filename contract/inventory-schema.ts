// The one definition of inventory.json: JSON Schema (2020-12) built with TypeBox, and the
// TypeScript types derived from it (Static<>), so the two can never drift apart.
import { Type, type Static, type TOptional, type TSchema, type TUnsafe } from '@sinclair/typebox';
import { DB_ENGINES } from './db-engines.ts';
import type { SelectionOf } from './db-engine.ts';

const strict = { additionalProperties: false } as const;

const Name = Type.String({ pattern: '^[a-z][a-z0-9-]{0,31}$', description: 'a lower-case name (letters, digits, dashes; up to 32)' });
const UnixName = Type.String({ pattern: '^[a-z_][a-z0-9_-]{0,31}$', description: 'a Unix user or group name' });
const AbsPath = Type.String({ pattern: '^/', minLength: 1, description: 'an absolute path' });
const AnyPath = Type.String({ minLength: 1, description: 'a path, relative to the inventory file or absolute' });
const Port = Type.Integer({ minimum: 1, maximum: 65535 });
const Host = Type.String({ pattern: '^[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$', description: 'a host name or IP address' });
const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$', description: '64 lower-case hex digits' });
const Fingerprint = Type.String({ pattern: '^[0-9A-F]{40}$', description: 'an OpenPGP v4 fingerprint: 40 upper-case hex digits, no spaces' });
const SshPublicKey = Type.String({
  pattern: '^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/]+=*$',
  description: 'an SSH public key: "<type> <base64>" without comment',
});
// Five cron fields; each field a list of *, n, n-m, with optional /step. Names (jan, mon) are not accepted.
const cronField = '(\\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*';
const Cron = Type.String({ pattern: `^${cronField}( ${cronField}){4}$`, description: 'a 5-field cron expression' });

export const PiModels = ['pi3', 'pi4', 'pi400', 'cm4', 'pi5', 'pi500', 'cm5', 'zero2w'] as const;

export const SshEndpoint = Type.Object(
  {
    host: Host,
    port: Type.Optional(Port),
    hostKey: SshPublicKey,
    admin: Type.Optional(Type.String({ pattern: '^[a-z_][a-z0-9_-]{0,31}$', description: 'admin login (root, or a user with passwordless sudo)' })),
    adminKeyFile: Type.Optional(AnyPath),
  },
  strict,
);

// The Pi's endpoint: its host key may be left out, since provision-pi makes it and pins it in state/<pi>/known_hosts.
export const PiSshEndpoint = Type.Object(
  {
    ...SshEndpoint.properties,
    hostKey: Type.Optional({ ...SshPublicKey, description: 'the Pi\'s host key; default: the one provision-pi pinned in state/<pi>/known_hosts' }),
  },
  strict,
);

export const PathSpec = Type.Object({ path: AbsPath, exclude: Type.Optional(Type.Array(Type.String({ minLength: 1 }))) }, strict);

/** servers[].databases: one optional property per registered engine, its selection schema. */
type EngineSelections = { [E in (typeof DB_ENGINES)[number] as E['name']]: TOptional<TUnsafe<SelectionOf<E>>> };
const engineSelections = Object.fromEntries(DB_ENGINES.map((e) => [e.name, Type.Optional(Type.Unsafe(e.selection))])) as EngineSelections;

export const Server = Type.Object(
  {
    name: Name,
    ssh: SshEndpoint,
    backupUser: Type.Optional(UnixName),
    groups: Type.Optional(Type.Array(UnixName)),
    users: Type.Optional(Type.Array(UnixName, { description: 'users whose private groups the backup user joins' })),
    paths: Type.Array(PathSpec, { minItems: 1 }),
    databases: Type.Optional(
      Type.Object(engineSelections, strict),
    ),
  },
  strict,
);

// Wi-Fi for a Pi without a cable (NetworkManager, as on Pi OS bookworm and trixie).
export const PiWifi = Type.Object(
  {
    ssid: Type.String({ minLength: 1, maxLength: 32, description: 'the network name (up to 32 bytes)' }),
    pskFile: Type.String({ minLength: 1, description: 'a file holding the WPA2/WPA3-personal passphrase (8-63 characters) or the 64-hex-digit key; kept out of the inventory' }),
    country: Type.String({ pattern: '^[A-Z]{2}$', description: 'a two-letter ISO 3166 country code such as DE (the Wi-Fi regulatory domain; Pi OS keeps Wi-Fi blocked until it is set)' }),
    hidden: Type.Optional(Type.Boolean({ description: 'the network does not broadcast its name' })),
  },
  strict,
);

// Ways to unlock the root besides the USB stick and the passphrase typed at the console.
export const TangServer = Type.Object(
  {
    url: Type.String({ pattern: '^https?://[A-Za-z0-9.:\\[\\]-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$', description: 'a tang server on the home network, e.g. http://192.168.1.10' }),
    thumbprint: Type.String({
      pattern: '^[A-Za-z0-9_-]+$',
      description: "the thumbprint of the tang server's signing key (tang-show-keys on it; JWK thumbprint, base64url): pinned, never trusted on first use",
    }),
    adv: Type.Optional({ ...AnyPath, description: "the server's advertisement saved beforehand (curl URL/adv): binding then needs no network; still checked against the thumbprint" }),
  },
  strict,
);

export const PiUnlock = Type.Object(
  {
    tang: Type.Optional(Type.Array(TangServer, { minItems: 1, description: 'network-bound unlock: one more LUKS keyslot, opened when these tang servers answer' })),
    sss: Type.Optional(
      Type.Object({ t: Type.Integer({ minimum: 1, description: 'how many of the tang servers must answer (default 1)' }) }, strict),
    ),
    ssh: Type.Optional(
      Type.Object(
        {
          authorizedKeys: Type.Array(SshPublicKey, { minItems: 1, description: 'keys that may run cryptroot-unlock (and nothing else) in the initramfs' }),
          port: Type.Optional(Port),
        },
        strict,
      ),
    ),
  },
  strict,
);

export const Pi = Type.Object(
  {
    name: Name,
    model: Type.Union(PiModels.map((m) => Type.Literal(m))),
    arch: Type.Optional(Type.Union([Type.Literal('arm64'), Type.Literal('amd64')], { description: 'amd64 only for lab images' })),
    baseImage: Type.Object({ path: AnyPath, sha256: Sha256 }, strict),
    usbKey: Type.Object(
      {
        label: Type.String({ pattern: '^[A-Z0-9_-]{1,11}$', description: 'a volume label: up to 11 upper-case characters' }),
        filesystem: Type.Optional(Type.Union([Type.Literal('vfat'), Type.Literal('ext4')])),
      },
      strict,
    ),
    dataDisk: Type.Object(
      {
        device: AbsPath,
        mountpoint: AbsPath,
        mapperName: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9_-]{0,30}$' })),
        minFreeMiB: Type.Optional(Type.Integer({ minimum: 0 })),
      },
      strict,
    ),
    sourceAddress: Type.String({
      pattern: '^[0-9a-fA-F.:/]+$',
      description: 'the address (or CIDR) servers see the Pi connect from, for authorized_keys from=',
    }),
    ssh: Type.Optional(PiSshEndpoint),
    luks: Type.Optional(
      Type.Object(
        {
          cipher: Type.Optional(Type.String({ minLength: 1 })),
          pbkdfMemoryKiB: Type.Optional(Type.Integer({ minimum: 32768, maximum: 1048576 })),
          pbkdfIterations: Type.Optional(Type.Integer({ minimum: 4, maximum: 1000 })),
        },
        strict,
      ),
    ),
    unlock: Type.Optional(PiUnlock),
    wifi: Type.Optional(PiWifi),
  },
  strict,
);

export const S3Target = Type.Object(
  {
    type: Type.Literal('s3'),
    bucket: Type.String({ pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$', description: 'an S3 bucket name' }),
    region: Type.String({ pattern: '^[a-z]{2}(-[a-z]+)+-[0-9]$', description: 'an AWS region such as eu-central-1' }),
    prefix: Type.String({ pattern: '^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/$', description: 'a key prefix ending in /' }),
    storageClass: Type.Optional(
      Type.Union(['STANDARD', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER_IR', 'GLACIER', 'DEEP_ARCHIVE'].map((s) => Type.Literal(s))),
    ),
    retentionDays: Type.Object(
      { full: Type.Integer({ minimum: 1 }), incremental: Type.Integer({ minimum: 1 }), manifest: Type.Optional(Type.Integer({ minimum: 1 })) },
      strict,
    ),
    endpoint: Type.Optional(Type.String({ format: 'uri', description: 'an S3-compatible endpoint URL (tests, other providers)' })),
    objectLock: Type.Optional(
      Type.Object({ mode: Type.Union([Type.Literal('GOVERNANCE'), Type.Literal('COMPLIANCE')]), days: Type.Integer({ minimum: 1 }) }, strict),
    ),
    writerUser: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9+=,.@_-]{1,64}$' })),
    restoreUser: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9+=,.@_-]{1,64}$' })),
  },
  strict,
);

export const DirTarget = Type.Object({ type: Type.Literal('dir'), path: AbsPath }, strict);

export const Recipient = Type.Object(
  {
    name: Name,
    publicKeyFile: AnyPath,
    fingerprint: Fingerprint,
    allowAead: Type.Optional(Type.Boolean({ description: 'accept a key that asks for SEIPDv2/AEAD (GnuPG 2.2 cannot read it)' })),
  },
  strict,
);

export const Schedule = Type.Object(
  {
    pull: Cron,
    offsite: Type.Object(
      {
        fullEveryDays: Type.Integer({ minimum: 1, maximum: 366 }),
        incrementalEveryDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 366 })),
        deadlineMinutes: Type.Optional(
          Type.Number({ exclusiveMinimum: 0, maximum: 10080, description: 'total time one run may spend uploading; default: the upload interval, at most a day' }),
        ),
      },
      strict,
    ),
  },
  strict,
);

export const Retention = Type.Object(
  {
    hourly: Type.Integer({ minimum: 0 }),
    daily: Type.Integer({ minimum: 0 }),
    weekly: Type.Integer({ minimum: 0 }),
    monthly: Type.Integer({ minimum: 0 }),
  },
  strict,
);

const RunEventKind = Type.Union([Type.Literal('start'), Type.Literal('ok'), Type.Literal('partial'), Type.Literal('refused'), Type.Literal('failed')]);

export const Webhook = Type.Object(
  {
    url: Type.String({ format: 'uri', pattern: '^https?://', description: 'an ntfy topic URL or any endpoint taking a POST' }),
    format: Type.Optional(Type.Union([Type.Literal('ntfy'), Type.Literal('json')], { description: 'default: ntfy for ntfy.sh URLs, json otherwise' })),
    tokenFile: Type.Optional(Type.String({ minLength: 1, description: 'a file holding the bearer token (relative to the inventory); install-runtime puts it on the Pi, 0600' })),
    events: Type.Optional(Type.Array(RunEventKind, { minItems: 1, uniqueItems: true, description: 'default: refused, partial, failed for ntfy; every event for json' })),
    timeoutSeconds: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 60, description: 'per attempt (one retry at most); default 10' })),
  },
  strict,
);

export const Notifications = Type.Object(
  {
    healthcheckUrl: Type.Optional(Type.String({ format: 'uri' })),
    mailTo: Type.Optional(Type.String({ format: 'email' })),
    prometheusTextfileDir: Type.Optional(AbsPath),
    webhook: Type.Optional(Webhook),
  },
  strict,
);

/**
 * Inventory fields holding a secret, masked in everything the admin side prints. With `file`, the
 * field names a file holding it: install-runtime reads it, installs it on the Pi as
 * /etc/pullvault/secrets/<file> (0600) and points the Pi's copy of the field there.
 */
export const SECRET_FIELDS: readonly { field: readonly string[]; file?: string }[] = [
  { field: ['notifications', 'healthcheckUrl'] }, // the URL is the check's token
  { field: ['notifications', 'webhook', 'url'] }, // an ntfy topic is its own password
  { field: ['notifications', 'webhook', 'tokenFile'], file: 'webhook-token' },
];

export const InventorySchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    pi: Pi,
    servers: Type.Array(Server, { minItems: 1 }),
    offsite: Type.Union([S3Target, DirTarget]),
    recipients: Type.Array(Recipient, { minItems: 2, description: 'at least two: owner + escrow' }),
    schedule: Schedule,
    retention: Retention,
    notifications: Type.Optional(Notifications),
  },
  { ...strict, $id: 'https://pullvault.dev/inventory.schema.json' },
);

export type Inventory = Static<typeof InventorySchema>;
export type ServerSpec = Static<typeof Server>;
export type PiSpec = Static<typeof Pi>;
export type PiUnlockSpec = Static<typeof PiUnlock>;
export type TangServerSpec = Static<typeof TangServer>;
export type PiWifiSpec = Static<typeof PiWifi>;
export type S3TargetSpec = Static<typeof S3Target>;
export type DirTargetSpec = Static<typeof DirTarget>;
export type OffsiteSpec = Static<typeof InventorySchema>['offsite'];
export type RecipientSpec = Static<typeof Recipient>;
export type RetentionSpec = Static<typeof Retention>;
export type ScheduleSpec = Static<typeof Schedule>;
export type NotificationsSpec = Static<typeof Notifications>;
export type PiModel = (typeof PiModels)[number];

/** The schema as a plain JSON document with the 2020-12 dialect named. */
export function inventoryJsonSchema(): TSchema & { $schema: string } {
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', ...structuredClone(InventorySchema) };
}
