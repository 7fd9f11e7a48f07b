// The runtime's configuration: the inventory itself (same schema, same types — no second
// definition) plus where things live on the Pi. install-runtime writes it as JSON (0600).
import type { Inventory } from './inventory-schema.ts';

export interface RuntimePaths {
  /** the Pi's private SSH key for pulling (on the encrypted root) */
  sshKeyFile: string;
  /** the servers' pinned host keys, in OpenSSH known_hosts form */
  knownHostsFile: string;
  /** where the backup disk is mounted; the runtime refuses to run unless it is a mounted volume */
  dataDir: string;
  /** file holding the S3 writer's credentials as JSON {accessKeyId, secretAccessKey} (s3 target only) */
  awsCredentialsFile?: string;
  /** armored public keys of the recipients, by recipient name */
  recipientKeysDir: string;
  /** the record of the last run (on the root filesystem; default /var/lib/pullvault/last-run.json) */
  runRecordFile?: string;
}

export interface RuntimeConfig {
  version: 1;
  inventory: Inventory;
  paths: RuntimePaths;
  /**
   * Lab and demo only: skip the check that dataDir is a separate mounted volume. Never set by
   * install-runtime for a real Pi.
   */
  allowUnmountedDataDir?: boolean;
  /**
   * Lab and demo only: accept a dataDir that is a mounted volume but not the dm-crypt mapper
   * (e.g. a tmpfs). Without it the mount must be /dev/mapper/<dataMapperName(pi)>, open.
   */
  allowUnencryptedDataDir?: boolean;
  /** per-server connection override (lab: addresses inside the lab network) */
  connect?: Record<string, { host: string; port?: number }>;
}

export const DEFAULT_CONFIG_PATH = '/etc/pullvault/config.json';
