// The key layout and the lifecycle rules, on plain data.
import { describe, expect, it } from 'vitest';
import type { S3TargetSpec } from '../../contract/inventory-schema.ts';
import { chainPrefixes, fullKey, incrementalKey, manifestKey, parseKey } from '../../contract/s3-layout.ts';
import { canonicalRule, lifecycleConfiguration, mergeLifecycle, storageClassWarnings } from '../../provision/aws/lifecycle.ts';

const t: S3TargetSpec = { type: 's3', bucket: 'b-example', region: 'eu-central-1', prefix: 'pi01/', retentionDays: { full: 120, incremental: 60 }, storageClass: 'STANDARD_IA' };

describe('s3 layout', () => {
  it('puts each kind under its own prefix', () => {
    expect(chainPrefixes('pi01/')).toEqual({ full: 'pi01/full/', incr: 'pi01/incr/', manifest: 'pi01/manifest/' });
    expect(fullKey('pi01/', 'web1', 'c1', 's1')).toBe('pi01/full/web1/c1/s1.tar.zst.gpg');
    expect(incrementalKey('pi01/', 'web1', 'c1', 's2')).toBe('pi01/incr/web1/c1/s2.tar.zst.gpg');
    expect(manifestKey('pi01/', 'web1', 'c1', 's2')).toBe('pi01/manifest/web1/c1/s2.jsonl.zst.gpg');
    expect(parseKey('pi01/', 'pi01/incr/web1/c1/s2.tar.zst.gpg')).toEqual({ kind: 'incr', server: 'web1', chainId: 'c1', name: 's2.tar.zst.gpg' });
    expect(parseKey('pi01/', 'pi02/incr/web1/c1/x')).toBeNull();
  });
  it('refuses segments that would escape the layout', () => {
    for (const bad of ['', '..', 'a/b', 'x y', '-x']) expect(() => fullKey('pi01/', bad, 'c', 's')).toThrow(/server/);
    expect(() => fullKey('pi01', 'web1', 'c', 's')).toThrow(/prefix/);
  });
});

describe('lifecycle', () => {
  it('expires each kind by prefix after its retention, cleans up versions and multipart uploads', () => {
    const { Rules } = lifecycleConfiguration(t, 'pi01', 30);
    const by = Object.fromEntries(Rules.map((r) => [r.ID, r]));
    expect(by['pullvault-pi01-full']).toMatchObject({ Filter: { Prefix: 'pi01/full/' }, Expiration: { Days: 120 }, Status: 'Enabled' });
    // 60 days for every restore point + a chain's span (fullEveryDays 30 + 1)
    expect(by['pullvault-pi01-incr']).toMatchObject({ Filter: { Prefix: 'pi01/incr/' }, Expiration: { Days: 91 } });
    expect(by['pullvault-pi01-manifest']).toMatchObject({ Filter: { Prefix: 'pi01/manifest/' }, Expiration: { Days: 120 } });
    expect(by['pullvault-pi01-cleanup']).toMatchObject({
      Filter: { Prefix: 'pi01/' },
      NoncurrentVersionExpiration: { NoncurrentDays: 30 },
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
      Expiration: { ExpiredObjectDeleteMarker: true },
    });
    // never by tag
    expect(JSON.stringify(Rules)).not.toMatch(/Tag/);
  });
  it('a full outlives the incrementals of its chain', () => {
    const { Rules } = lifecycleConfiguration(t, 'pi01', 30);
    const days = (id: string) => Rules.find((r) => r.ID === id)!.Expiration!.Days!;
    expect(days('pullvault-pi01-full')).toBeGreaterThanOrEqual(days('pullvault-pi01-incr'));
  });
  it('keeps rules pullvault does not own, replaces its own', () => {
    const foreign = { ID: 'logs', Status: 'Enabled', Filter: { Prefix: 'logs/' }, Expiration: { Days: 3 } };
    const edited = { ID: 'pullvault-pi01-full', Status: 'Enabled', Filter: { Prefix: 'pi01/full/' }, Expiration: { Days: 1 } };
    const merged = mergeLifecycle([foreign, edited], t, 'pi01', 30);
    expect(merged.Rules[0]).toEqual(foreign);
    expect(merged.Rules.filter((r) => r.ID === 'pullvault-pi01-full')).toEqual([lifecycleConfiguration(t, 'pi01', 30).Rules[0]]);
  });
  it('canonical form ignores the legacy Prefix shape and empty fields', () => {
    expect(canonicalRule({ ID: 'x', Status: 'Enabled', Prefix: 'a/', Expiration: { Days: 3 }, Transitions: [] })).toEqual({ ID: 'x', Status: 'Enabled', Filter: { Prefix: 'a/' }, Expiration: { Days: 3 } });
  });
  it('warns when retention is shorter than the storage class bills for', () => {
    expect(storageClassWarnings(t, 30)).toEqual([]);
    expect(storageClassWarnings({ ...t, storageClass: 'DEEP_ARCHIVE' }, 30).join('\n')).toMatch(/incremental \(60, kept 91 days\) is below DEEP_ARCHIVE's minimum storage duration \(180 days\)/);
  });
});
