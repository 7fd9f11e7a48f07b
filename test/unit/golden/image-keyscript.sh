#!/bin/sh
# rendered by pullvault provision-pi; re-provision instead of editing on the Pi
# cryptsetup keyscript for the root (crypttab keyscript=): prints the key on stdout.
# It waits for the USB key (filesystem label PVKEY, file /pullvault-root.key) and AT THE SAME TIME
# runs askpass, so the recovery passphrase typed on the console (or sent by cryptroot-unlock over
# dropbear, which talks to askpass's fifo) unlocks too. Whichever comes first wins.
# A stick whose key already failed is not offered again, so a wrong stick cannot lock the console out.
LABEL='PVKEY'
KEYFILE='pullvault-root.key'
FSTYPE='vfat'
ASKPASS=/lib/cryptsetup/askpass
RUN=/run/pullvault-unlock
umask 077
mkdir -p "$RUN/mnt"
PROMPT="Please unlock disk ${CRYPTTAB_NAME:-root}: insert the USB key $LABEL or type the recovery passphrase: "

msg() { echo "pullvault-unlock: $*" >&2; }
# the kernel log only (dmesg, journalctl -b; the screen too without `quiet`): printed before the prompt
kmsg() { echo "<6>pullvault-unlock: $*" > /dev/kmsg 2>/dev/null || :; }

modprobe -q -a usb_storage uas vfat nls_cp437 nls_ascii nls_iso8859_1 nls_utf8 2>/dev/null

# Try the stick: succeed (key on stdout) only if it is present and its key was not tried before.
try_stick() {
    dev="/dev/disk/by-label/$LABEL"
    [ -b "$dev" ] || return 1
    mount -r -t "$FSTYPE" "$dev" "$RUN/mnt" 2>/dev/null || return 1
    rc=1
    if [ -f "$RUN/mnt/$KEYFILE" ]; then
        sum=$(sha256sum < "$RUN/mnt/$KEYFILE" | cut -d' ' -f1)
        if ! grep -qx "$sum" "$RUN/tried" 2>/dev/null; then
            echo "$sum" >> "$RUN/tried"
            stop_askpass
            msg "USB key $LABEL found, unlocking ${CRYPTTAB_NAME:-root}"
            cat "$RUN/mnt/$KEYFILE"
            rc=0
        fi
    elif [ ! -e "$RUN/nokey-said" ]; then
        msg "a stick labelled $LABEL is present but has no /$KEYFILE"
        : > "$RUN/nokey-said"
    fi
    umount "$RUN/mnt" 2>/dev/null
    return $rc
}

apid=
stop_askpass() {
    if [ -n "$apid" ]; then
        # askpass ignores SIGTERM while it waits for input: TERM, then KILL
        kill "$apid" 2>/dev/null
        n=0
        while kill -0 "$apid" 2>/dev/null && [ $n -lt 10 ]; do sleep 0.1; n=$((n + 1)); done
        kill -9 "$apid" 2>/dev/null
        wait "$apid" 2>/dev/null
        apid=
        # a killed askpass leaves its fifo (used by cryptroot-unlock) behind
        rm -f /lib/cryptsetup/passfifo
    fi
    rm -f "$RUN/pass"
}

if [ "${CRYPTTAB_TRIED:-0}" -gt 0 ] && [ -s "$RUN/tried" ]; then
    msg "the key did not unlock ${CRYPTTAB_NAME:-root}; type the recovery passphrase or insert the right USB key"
fi

kmsg "asking for the passphrase on the console while waiting for the USB key $LABEL"
# stdin from the console: askpass must see a tty, else it reopens stdout onto /dev/console
# (the passphrase would go to the screen, not to us)
"$ASKPASS" "$PROMPT" < /dev/console > "$RUN/pass" &
apid=$!

while :; do
    if [ -n "$apid" ] && ! kill -0 "$apid" 2>/dev/null; then
        wait "$apid"
        arc=$?
        apid=
        if [ $arc -eq 0 ]; then
            cat "$RUN/pass"
            rm -f "$RUN/pass"
            exit 0
        fi
        rm -f "$RUN/pass"
        msg "askpass failed (exit $arc); waiting for the USB key $LABEL only"
    fi
    try_stick && exit 0
    sleep 1
done
