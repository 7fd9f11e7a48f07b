// The real runtime bundle (runtime/main.ts): what esbuild put in it. The Pi needs S3 only; IAM and
// STS clients belong to provision-aws and must not ride along (size, and no code on the Pi that
// could manage users).
import { describe, expect, it } from 'vitest';
import { buildRuntime } from '../../provision/build-runtime.ts';

describe('runtime bundle', () => {
  it('carries the S3 client and no IAM or STS client', async () => {
    const b = await buildRuntime({ outFile: null });
    const aws = b.inputs.filter((f) => f.includes('node_modules/@aws-sdk/client-'));
    expect(aws.some((f) => f.includes('node_modules/@aws-sdk/client-s3/'))).toBe(true);
    expect(aws.filter((f) => /node_modules\/@aws-sdk\/client-(iam|sts)\//.test(f))).toEqual([]);
    expect(b.content).not.toContain('IAMClient');
  }, 60_000);

  it('takes nothing from the admin side: only runtime/, contract/ and lib/ (and package.json for the version)', async () => {
    const b = await buildRuntime({ outFile: null });
    const own = b.inputs.filter((f) => !f.includes('node_modules/'));
    expect(own.some((f) => f.startsWith('contract/'))).toBe(true);
    expect(own.filter((f) => !/^(runtime|contract|lib)\//.test(f) && !['package.json', 'pullvault-entry.mjs'].includes(f))).toEqual([]);
  }, 60_000);
});
