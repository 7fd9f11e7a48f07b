// provision-pi, pi.wifi: the NetworkManager connection (Pi OS bookworm and trixie manage the
// network with NetworkManager), the regulatory domain on the kernel command line (what raspi-config's
// do_wifi_country writes for NetworkManager images) and an rfkill unblock at boot (Pi OS keeps
// WLAN soft-blocked until a country is set; Raspberry Pi Imager's first-run script unblocks it the
// same way). Pure: the passphrase comes in as text, read by the build.
import type { PiSpec, PiWifiSpec } from '../../contract/inventory-schema.ts';

export const WIFI_PATHS = {
  connection: '/etc/NetworkManager/system-connections/pullvault-wifi.nmconnection',
  unblockService: '/etc/systemd/system/pullvault-wifi-unblock.service',
} as const;

/** Why the pskFile's text is not a usable WPA passphrase or key, or undefined (one trailing newline allowed). */
export function wifiPassphraseProblem(text: string): string | undefined {
  const psk = wifiPassphrase(text);
  if (/^[0-9a-fA-F]{64}$/.test(psk)) return undefined;
  if (!/^[\x20-\x7e]*$/.test(psk)) return 'holds characters other than printable ASCII (a WPA passphrase is 8-63 of them, or 64 hex digits)';
  if (psk.length < 8 || psk.length > 63) return `is ${psk.length} characters long; a WPA passphrase is 8-63 (or 64 hex digits)`;
  return undefined;
}

export function wifiPassphrase(text: string): string {
  return text.replace(/\r?\n$/, '');
}

/** Why the SSID cannot go in a keyfile as text, or undefined. */
export function wifiSsidProblem(ssid: string): string | undefined {
  if (Buffer.byteLength(ssid, 'utf8') > 32) return 'is longer than 32 bytes';
  if (/[\x00-\x1f\x7f;]/.test(ssid)) return 'holds a control character or ";", which a NetworkManager keyfile cannot carry as text';
  return undefined;
}

/** A GKeyFile string value: backslash and a leading space escaped (the validator refused the rest). */
function keyfileValue(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/^ /, '\\s');
}

/** Values for templates/pi/wifi.nmconnection.hbs. */
export function wifiConnectionVars(wifi: PiWifiSpec, pskText: string, uuid: string): Record<string, unknown> {
  return { ssid: keyfileValue(wifi.ssid), psk: keyfileValue(wifiPassphrase(pskText)), hidden: wifi.hidden ? 'true' : 'false', uuid };
}

/** cfg80211.ieee80211_regdom=XX for cmdline.txt, when pi.wifi is set. */
export function wifiCmdlineArgs(pi: PiSpec): string[] {
  return pi.wifi ? [`cfg80211.ieee80211_regdom=${pi.wifi.country}`] : [];
}
