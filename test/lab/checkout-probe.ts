// Helper process for lab.test.ts, run from a copy of the lab module in a checkout under /tmp:
// starts a host from that copy and prints, as one JSON line, what the host sees of the checkout
// (argv[2] names a marker file in it) and of its own /tmp. Run: node --import tsx checkout-probe.ts MARKER
// The copy sits next to this file in the checkout (not next to it in the repo): import by URL.
type HostModule = typeof import('../../provision/lab/host.ts');
const { startHost } = (await import(new URL('./provision/lab/host.ts', import.meta.url).href)) as HostModule;

const marker = process.argv[2];
const host = await startHost({ name: 'probe' });
try {
  const seen = await host.exec(['cat', '--', marker], { okCodes: [0, 1] });
  await host.exec(['sh', '-c', 'echo inside > "$1"', 'sh', marker], { okCodes: [0, 1] });
  const tmp = await host.exec(['ls', '-A', '/tmp']);
  console.log(JSON.stringify({ marker: seen.code === 0 ? seen.stdout : null, tmp: tmp.stdout.split('\n').filter(Boolean) }));
} finally {
  await host.stop();
}
