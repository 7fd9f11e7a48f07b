// pi.unlock: tang servers and SSH unlock keys, as the validator sees them.
import { describe, expect, it } from 'vitest';
import { exampleInventory, problemsOf as inventoryProblems } from '../fixtures/inventory-problems.ts';
import { initramfsNetwork, tangThreshold, unlockSshPort } from '../../contract/inventory-defaults.ts';

const example = exampleInventory();
// a SHA-256 JWK thumbprint as tang-show-keys prints it
const THP = 'l3fZGUCmnvKQF_OA6VZF9jf8z2s1BkTXxyT0nb3Ssls';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMnrFkJQ2xUcELSoX2wVt0gzJWvS6t+kUOOqU+rcFQ1R';

const problemsOf = (unlock: unknown) => inventoryProblems((inv) => {
  inv.pi.unlock = unlock;
});

describe('pi.unlock', () => {
  it('accepts tang servers on the home network, a threshold, and SSH unlock keys', async () => {
    expect(
      await problemsOf({
        tang: [{ url: 'http://192.168.1.10', thumbprint: THP }, { url: 'http://nas.home.arpa:8080/', thumbprint: THP.slice(0, 27) }],
        sss: { t: 2 },
        ssh: { authorizedKeys: [KEY], port: 2222 },
      }),
    ).toEqual([]);
  });

  it('refuses a tang server that is one of the internet servers (a stolen Pi would unlock anywhere)', async () => {
    const p = await problemsOf({ tang: [{ url: 'http://WEB1.example.net:7500', thumbprint: THP }] });
    expect(p).toEqual([expect.stringMatching(/pi\.unlock\.tang\[0\]\.url: web1\.example\.net is servers\[0\] \(web1\), an internet server/)]);
  });

  it('refuses a malformed thumbprint', async () => {
    expect(await problemsOf({ tang: [{ url: 'http://10.0.0.2', thumbprint: THP.slice(0, 40) }] })).toEqual([
      expect.stringMatching(/pi\.unlock\.tang\[0\]\.thumbprint: .* is not a JWK thumbprint/),
    ]);
    // not base64url at all: the schema says so
    expect((await problemsOf({ tang: [{ url: 'http://10.0.0.2', thumbprint: `${THP.slice(0, 42)}=` }] })).join('\n')).toMatch(/pi\.unlock\.tang\/0\/thumbprint|thumbprint/);
  });

  it('refuses the same tang URL twice (also with a trailing slash or other case)', async () => {
    const p = await problemsOf({ tang: [{ url: 'http://nas.home.arpa:80/', thumbprint: THP }, { url: 'http://NAS.home.arpa', thumbprint: THP }] });
    expect(p).toEqual([expect.stringMatching(/pi\.unlock\.tang\[1\]\.url: same server as pi\.unlock\.tang\[0\]/)]);
  });

  it('refuses a threshold the tang servers cannot meet, and a threshold without tang', async () => {
    expect(await problemsOf({ tang: [{ url: 'http://10.0.0.2', thumbprint: THP }], sss: { t: 2 } })).toEqual([expect.stringMatching(/pi\.unlock\.sss\.t: 2 tang servers required but only 1/)]);
    expect(await problemsOf({ sss: { t: 1 } })).toEqual([expect.stringMatching(/pi\.unlock\.sss: needs pi\.unlock\.tang/)]);
  });

  it('refuses a non-URL, an unknown field, an SSH unlock without keys, a key listed twice', async () => {
    expect((await problemsOf({ tang: [{ url: 'ftp://10.0.0.2', thumbprint: THP }] })).join('\n')).toMatch(/url/);
    expect((await problemsOf({ tang: [{ url: 'http://10.0.0.2', thumbprint: THP, trust: true }] })).join('\n')).toMatch(/trust|additional/i);
    expect((await problemsOf({ ssh: { authorizedKeys: [] } })).join('\n')).toMatch(/authorizedKeys/);
    expect(await problemsOf({ ssh: { authorizedKeys: [KEY, KEY] } })).toEqual([expect.stringMatching(/pi\.unlock\.ssh\.authorizedKeys: .* listed twice/)]);
  });

  it('refuses an SSH unlock port that is the system sshd port', async () => {
    const p = await inventoryProblems((inv) => {
      inv.pi.ssh.port = 2222;
      inv.pi.unlock = { ssh: { authorizedKeys: [KEY] } };
    });
    expect(p).toEqual([expect.stringMatching(/pi\.unlock\.ssh\.port: same as pi\.ssh\.port \(2222\)/)]);
  });

  it('defaults: port 2222, any one tang server, initramfs network only when tang or ssh is set', () => {
    const pi = structuredClone(example.pi);
    expect(initramfsNetwork(pi)).toBe(false);
    expect(unlockSshPort(pi)).toBe(2222);
    pi.unlock = { tang: [{ url: 'http://10.0.0.2', thumbprint: THP }] };
    expect(initramfsNetwork(pi)).toBe(true);
    expect(tangThreshold(pi)).toBe(1);
    pi.unlock = { ssh: { authorizedKeys: [KEY], port: 2022 } };
    expect(initramfsNetwork(pi)).toBe(true);
    expect(unlockSshPort(pi)).toBe(2022);
  });
});
