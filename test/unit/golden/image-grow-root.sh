#!/bin/sh
# rendered by pullvault provision-pi; re-provision instead of editing on the Pi
# First boot: grow the root partition to the end of the card, then the LUKS mapping, then ext4.
set -eu
STAMP=/var/lib/pullvault/root-grown
NAME=cryptroot
[ -e "$STAMP" ] && exit 0
src=$(cryptsetup status "$NAME" | sed -n 's/^ *device: *//p')
[ -b "$src" ] || { echo "pullvault-grow-root: cannot find the device under $NAME" >&2; exit 1; }
part=$(basename "$(readlink -f "$src")")
disk=/dev/$(basename "$(readlink -f "/sys/class/block/$part/..")")
num=$(cat "/sys/class/block/$part/partition")
echo "pullvault-grow-root: growing partition $num of $disk, then $NAME, then its ext4"
echo ', +' | sfdisk --quiet --force --no-reread -N "$num" "$disk"
partx -u -n "$num" "$disk"
if ! cryptsetup resize "$NAME" </dev/null 2>/dev/null; then
    # the volume key is not in the kernel keyring: use the USB key (still plugged in at first boot)
    mnt=$(mktemp -d)
    mount -r -t vfat /dev/disk/by-label/PVKEY "$mnt"
    rc=0
    cryptsetup resize --key-file "$mnt/pullvault-root.key" "$NAME" || rc=$?
    umount "$mnt"; rmdir "$mnt"
    [ $rc -eq 0 ] || exit $rc
fi
resize2fs "/dev/mapper/$NAME"
mkdir -p "$(dirname "$STAMP")"
touch "$STAMP"
echo "pullvault-grow-root: done: $(df -h / | tail -1)"
