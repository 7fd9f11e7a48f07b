#!/bin/sh
# rendered by pullvault provision-pi; re-provision instead of editing on the Pi
echo "rpi-update is blocked on this pullvault box: its kernels come without an initramfs that can" >&2
echo "unlock the encrypted root. Use apt (the kernel guard checks the initramfs), or re-provision." >&2
exit 1
