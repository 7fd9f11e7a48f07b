#!/bin/sh
# rendered by pullvault provision-pi; re-provision instead of editing on the Pi
# Kernel update guard, installed as /etc/kernel/postinst.d/zz-pullvault-initramfs-guard and
# /etc/initramfs/post-update.d/zz-pullvault-initramfs-guard: refuses (non-zero exit, so dpkg/update-initramfs fail
# loudly) to leave kernel $1 without an initramfs that can unlock the encrypted root, and checks the
# copy the firmware loads (auto_initramfs=1) is that initramfs.
ver="$1"
[ -n "$ver" ] || exit 0
initrd="/boot/initrd.img-$ver"
fail() {
    echo "pullvault: kernel $ver: $*" >&2
    echo "pullvault: this Pi could not unlock its encrypted root with that kernel; run: update-initramfs -c -k $ver" >&2
    exit 1
}
[ -s "$initrd" ] || fail "no $initrd"
list=$(lsinitramfs "$initrd" 2>/dev/null) || fail "cannot list $initrd"
echo "$list" | grep -q 'usr/local/lib/pullvault/unlock-keyscript$' || fail "$initrd lacks the unlock keyscript"
echo "$list" | grep -q 'cryptroot/crypttab$' || fail "$initrd lacks cryptroot/crypttab"
echo "$list" | grep -q 'dm-crypt.ko' || fail "$initrd lacks dm-crypt"
case "$ver" in
*-2712) fw=/boot/firmware/initramfs_2712 ;;
*-v8|*-v8-*|*-rpi-v8) fw=/boot/firmware/initramfs8 ;;
*) fw=/boot/firmware/initramfs8 ;;
esac
if [ -e "$fw" ] && ! cmp -s "$initrd" "$fw"; then
    fail "$fw differs from $initrd (the firmware would load a stale initramfs)"
fi
exit 0
