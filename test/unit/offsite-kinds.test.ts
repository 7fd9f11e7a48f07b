// The offsite kinds' contract (contract/offsite-kinds.ts) and the runtime's registry of stores
// (runtime/offsite/open-target.ts) name the same kinds, with the same credentials need; the admin
// side's questions (does it need a credentials file, where is it) are answered per kind.
import { describe, expect, it } from 'vitest';
import { OFFSITE_KINDS, describeOffsite, needsCredentialsFile, offsiteKeyRoot } from '../../contract/offsite-kinds.ts';
import type { OffsiteSpec } from '../../contract/inventory-schema.ts';
import { TARGET_KINDS } from '../../runtime/offsite/open-target.ts';

const s3 = { type: 's3', bucket: 'b', prefix: 'pv/', region: 'eu-west-1', retentionDays: { full: 30, incremental: 30 } } as OffsiteSpec;
const dir = { type: 'dir', path: '/srv/offsite/' } as OffsiteSpec;

describe('offsite kinds', () => {
  it('the contract and the runtime registry list the same kinds, each needing the same credentials', () => {
    expect(TARGET_KINDS.map((k) => k.type).sort()).toEqual(Object.keys(OFFSITE_KINDS).sort());
    for (const k of TARGET_KINDS) expect(k.credentials, k.type).toBe(OFFSITE_KINDS[k.type as OffsiteSpec['type']].credentials);
  });

  it('answers the admin side per kind', () => {
    expect([needsCredentialsFile(s3), needsCredentialsFile(dir)]).toEqual([true, false]);
    expect(describeOffsite(s3)).toBe('s3://b/pv/ (eu-west-1)');
    expect(describeOffsite(dir)).toBe('folder /srv/offsite/');
    expect(offsiteKeyRoot(s3)).toEqual({ root: 's3://b/', prefix: 'pv/' });
    expect(offsiteKeyRoot(dir)).toEqual({ root: '/srv/offsite/', prefix: '' });
  });
});
