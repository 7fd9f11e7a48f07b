#!/bin/sh
# rendered by pullvault provision-pi; re-provision instead of editing on the Pi
# Puts the pullvault unlock keyscript and what it needs (USB storage, the stick's filesystem,
# dm-crypt and the cipher's modules) into every initramfs; fails the build if something is missing.
PREREQ="cryptroot"
prereqs() { echo "$PREREQ"; }
case "$1" in
prereqs) prereqs; exit 0 ;;
esac
. /usr/share/initramfs-tools/hook-functions

copy_exec /usr/local/lib/pullvault/unlock-keyscript
manual_add_modules dm_mod dm_crypt algif_skcipher adiantum chacha_generic chacha_neon nhpoly1305 nhpoly1305_neon poly1305_generic aes_generic aes_arm64 aes_neon_blk usb_storage uas sd_mod ext4 vfat nls_cp437 nls_ascii nls_iso8859_1 nls_utf8 dwc2 xhci_hcd xhci_pci xhci_plat_hcd pcie_brcmstb reset_raspberrypi dwc3 dwc3_of_simple hid usbhid hid_generic mmc_block virtio_pci virtio_blk virtio_mmio sdhci_iproc bcm2835

for f in /usr/local/lib/pullvault/unlock-keyscript /lib/cryptsetup/askpass /sbin/cryptsetup; do
    if [ ! -e "${DESTDIR}$f" ] && [ ! -e "${DESTDIR}/usr$f" ]; then
        echo "pullvault: $f is missing from the initramfs; the Pi could not unlock its root" >&2
        exit 1
    fi
done
exit 0
