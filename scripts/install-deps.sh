#!/usr/bin/env bash
# Installs what pullvault's tests and demo need on a Debian/Ubuntu machine (root).
# Idempotent: apt-get skips what is already there.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "install-deps: needs root (sudo make demo / sudo make test)" >&2; exit 2; fi
PKGS=(
  # the lab: isolated hosts with real daemons
  openssh-server openssh-client rsync socat util-linux iproute2 procps
  mariadb-server mariadb-client postgresql postgresql-client sqlite3
  # archives and their cross-checks
  gnupg zstd tar xz-utils patch
  # the local AWS endpoint (moto) runs in a venv
  python3-venv python3-pip
  # the Pi image: userspace LUKS, filesystems without mounting, qemu boot tests
  cryptsetup-bin e2fsprogs dosfstools mtools fdisk mmdebstrap cpio attr bc qemu-system-x86 qemu-system-arm qemu-utils qemu-user-static
  # pi.unlock: clevis binds the tang keyslot; the boot tests run the real tangd (guestfwd)
  clevis clevis-luks jose tang
  # the recovery kit: paper keys, its PDF (headless Chromium), and the scan-it-back test
  paperkey chromium poppler-utils zbar-tools
  # baselines for benchmarks
  restic duplicity borgbackup
  # Node for the runtime, when the machine has none
  make
)
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Debian starts the database and sshd services on install where it can; the lab starts its own.
command -v node >/dev/null || { echo "install-deps: node (>= 20) is required: apt-get install nodejs npm" >&2; exit 2; }
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || { echo "install-deps: node >= 20 is required, found $(node --version)" >&2; exit 2; }
echo "install-deps: ok"
