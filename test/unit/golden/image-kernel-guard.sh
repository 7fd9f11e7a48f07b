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
# a module counts when its .ko (compressed or not) is inside, or the kernel builds it in
builtin="/usr/lib/modules/$ver/modules.builtin"
for m in dm_crypt usb_storage vfat nls_cp437 usbhid hid_generic; do
    re=$(echo "$m" | sed 's/[-_]/[-_]/g')
    echo "$list" | grep -Eq "/$re\.ko(\.(xz|zst|gz))?\$" && continue
    [ -r "$builtin" ] && grep -Eq "/$re\.ko\$" "$builtin" && continue
    fail "$initrd lacks the $m module (and the kernel does not build it in)"
done
case "$ver" in
*-2712) fw=/boot/firmware/initramfs_2712 ;;
*-v8|*-v8-*|*-rpi-v8) fw=/boot/firmware/initramfs8 ;;
*) fw=/boot/firmware/initramfs8 ;;
esac
if [ -e "$fw" ] && ! cmp -s "$initrd" "$fw"; then
    fail "$fw differs from $initrd (the firmware would load a stale initramfs)"
fi
exit 0
