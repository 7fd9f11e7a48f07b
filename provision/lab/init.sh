#!/bin/bash
# PID 1 of a lab host (started by host.ts through
#   setpriv --pdeathsig KILL unshare --mount --net --pid --uts --ipc --fork --kill-child --propagation private).
# Usage: init.sh STATE_DIR NAME sshd|nosshd CHECKOUT
#   STATE_DIR holds admin_key.pub; an empty STATE_DIR/ovl is where this host's tmpfs goes.
#   CHECKOUT is the test runner's repo (with node_modules, .venv), shown at the same path inside.
# Protocol on stdout (a pipe read by host.ts): "NS" as soon as the namespaces exist, then
# "READY <host public key>" once sshd accepts connections; stdout is then closed.
# Everything here happens in the host's private mount namespace: nothing is mounted on the machine.
set -euo pipefail
S=$1 NAME=$2 SSHD=${3:-sshd} CHECKOUT=${4:-}
T=$S/ovl R=$S/ovl/root

# Close every inherited fd above 2, so daemons started below cannot hold the test runner's pipes.
for f in /proc/self/fd/*; do
  n=${f##*/}
  if [ "$n" -gt 2 ]; then exec {n}>&- 2>/dev/null || true; fi
done
echo NS

mount -t tmpfs -o "size=${LAB_TMPFS_SIZE:-4g},mode=0755" "lab-$NAME" "$T"
mkdir "$T/upper" "$T/work" "$R"
# Overlay over the machine's /: the host sees the installed software (and /work, node_modules),
# but every write lands in the tmpfs upper layer and vanishes with the namespace.
mount -t overlay "lab-$NAME" -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t tmpfs -o mode=0755,size=1m dev "$R/dev"
for d in null zero full random urandom tty; do
  touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"
done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"; ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"; ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
mount -t tmpfs -o mode=1777 shm "$R/dev/shm"
mount -t tmpfs -o mode=0755 run "$R/run"
mount -t tmpfs -o mode=1777 tmp "$R/tmp"
# The runner's checkout may lie under a path made private above (/tmp, /run, /dev/shm) or on a
# mount the root overlay does not cross: give it its own overlay at the same path, so the host
# runs this tree (never another one) and its writes there stay inside the host like all others.
# The bind to a fixed name keeps the checkout's path (which may hold ',' or ':') out of the options.
if [ -n "$CHECKOUT" ]; then
  mkdir "$T/checkout" "$T/checkout-upper" "$T/checkout-work"
  mount --bind "$CHECKOUT" "$T/checkout"
  mkdir -p "$R$CHECKOUT"
  mount -t overlay "lab-$NAME-checkout" \
    -o "lowerdir=$T/checkout,upperdir=$T/checkout-upper,workdir=$T/checkout-work" "$R$CHECKOUT"
fi
# The machine's own root keys/config (if any) must not leak into hosts: start from an empty ~/.ssh.
rm -rf "$R/root/.ssh"; install -d -m 0700 "$R/root/.ssh"
install -m 0600 "$S/admin_key.pub" "$R/root/.ssh/authorized_keys"
# Nor its shell start-up files: sshd runs every command through bash, which reads ~/.bashrc, and a
# machine's (pyenv init, say) can make each lab command slow or change what it runs.
rm -f "$R/root/.bashrc" "$R/root/.bash_profile" "$R/root/.bash_login" "$R/root/.profile"
hostname "$NAME"; echo "$NAME" > "$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$NAME" > "$R/etc/hosts"

cd "$R"; mkdir -p .oldroot; pivot_root . .oldroot; cd /
umount -l /.oldroot; rmdir /.oldroot
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ip link set lo up

rm -f /etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -C '' -f /etc/ssh/ssh_host_ed25519_key
# MaxStartups: tests open many connections at once; the default (10:30:100) drops some at random.
printf 'HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nLogLevel VERBOSE\nMaxStartups 200\n' \
  > /etc/ssh/sshd_config.d/00-lab.conf
install -d -m 0755 /run/sshd
if [ "$SSHD" = sshd ]; then
  /usr/sbin/sshd -E /var/log/sshd.log </dev/null >/dev/null 2>&1
  # sshd listens only after it daemonized: wait until 127.0.0.1:22 accepts.
  for _ in $(seq 500); do
    if (exec 3<>/dev/tcp/127.0.0.1/22) 2>/dev/null; then break; fi
    sleep 0.01
  done
fi
read -r kt kb _ < /etc/ssh/ssh_host_ed25519_key.pub
echo "READY $kt $kb"
exec >/dev/null
trap 'exit 0' TERM INT
# bash as PID 1 reaps re-parented orphans whenever it handles SIGCHLD.
while :; do sleep 3600 & wait $! || true; done
