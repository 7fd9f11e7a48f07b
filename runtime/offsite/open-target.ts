// The registry of offsite store kinds: a spec (the inventory's offsite, or a --target string)
// and credentials → an open Target. A new kind is one module exporting an OffsiteTargetKind,
// listed here, and its schema fragment in the inventory's offsite union.
import { readFile } from 'node:fs/promises';
import type { OffsiteSpec } from '../../contract/inventory-schema.ts';
import type { RuntimeConfig } from '../../contract/runtime-config.ts';
import { dirTargetKind } from './target-dir.ts';
import { s3TargetKind } from './target-s3.ts';
import type { CredentialsFile, OffsiteTargetKind, Target, TargetTuning } from './target.ts';

export const TARGET_KINDS: readonly OffsiteTargetKind<never>[] = [dirTargetKind, s3TargetKind] as OffsiteTargetKind<never>[];

export function targetKind(type: string, kinds: readonly OffsiteTargetKind<never>[] = TARGET_KINDS): OffsiteTargetKind<OffsiteSpec> {
  const k = kinds.find((x) => x.type === type);
  if (!k) throw new Error(`offsite.type: unknown kind of store "${type}" (known: ${kinds.map((x) => x.type).join(', ')})`);
  return k as unknown as OffsiteTargetKind<OffsiteSpec>;
}

export async function readCredentials(file: string): Promise<CredentialsFile> {
  const c = JSON.parse(await readFile(file, 'utf8')) as CredentialsFile;
  if (!c.accessKeyId || !c.secretAccessKey) throw new Error(`${file}: needs accessKeyId and secretAccessKey`);
  return c;
}

/** Opens the store `spec` names (a spec the inventory's validation accepted). */
export function openTarget(spec: OffsiteSpec, creds?: CredentialsFile, tuning: TargetTuning = {}, kinds = TARGET_KINDS): Target {
  return targetKind(spec?.type, kinds).open(spec, creds, tuning);
}

/** The store of the Pi's config, with the credentials file its kind needs. */
export async function openConfiguredTarget(config: RuntimeConfig): Promise<Target> {
  const spec = config.inventory.offsite;
  const file = targetKind(spec.type).credentials === 'file' ? config.paths.awsCredentialsFile : undefined;
  return openTarget(spec, file ? await readCredentials(file) : undefined);
}

/** A --target string ("dir:/path", "s3://bucket/prefix/") → an offsite spec. */
export function parseTargetArg(arg: string, region?: string, endpoint?: string, kinds = TARGET_KINDS): OffsiteSpec {
  for (const k of kinds) {
    const spec = (k as unknown as OffsiteTargetKind<OffsiteSpec>).parseArg(arg, { region, endpoint });
    if (spec) return spec;
  }
  throw new Error(`--target: expected ${kinds.map((k) => k.argForm).join(' or ')}, got ${arg}`);
}
