#!/bin/sh
# attest-disk-unlock.sh — open the node's encrypted state volume with the disk key the broker
# released to this attested node, then forget the key.
#
# Run by attest-disk-unlock.service after attest-join.service (which wrote the key with
# --disk-key-out) and before the volume's mount. Settings (environment, or /etc/attest-broker/disk.env):
#   ATTEST_DISK_DEVICE  the block device (a stable name: /dev/disk/by-id/…, /dev/disk/by-partlabel/…)
#   ATTEST_DISK_NAME    the dm-crypt name to open it as (→ /dev/mapper/<name>), default: attest-data
#   ATTEST_DISK_KEY     the raw 32-byte key, default: /run/attest-join/disk.key — must be on tmpfs
#   ATTEST_DISK_FORMAT  "first-boot": luksFormat the device with the key when it carries no
#                       signature at all (a new, blank volume); default: never format
#
# The key is handed to cryptsetup as a key file (never on a command line, never on stdout) and
# removed when this script ends, opened or not. A key file that is not on tmpfs/ramfs is refused,
# so it cannot reach persistent storage through this path. Recovery when the broker is
# unreachable: docs/join.md, "Disk key".
#
# Exit: 0 opened (or already open); 1 failed (wrong key, not LUKS and not blank, cryptsetup
# error); 2 usage (settings, key not on tmpfs).
set -eu
umask 077

log() { printf 'attest-disk-unlock: %s\n' "$*" >&2; }
die() { code=$1; shift; log "error: $*"; exit "$code"; }

ENV_FILE=${ATTEST_DISK_ENV_FILE:-/etc/attest-broker/disk.env}
if [ -r "$ENV_FILE" ]; then
  # shellcheck disable=SC1090 # KEY=VALUE lines written at provisioning
  . "$ENV_FILE"
fi
DEVICE=${ATTEST_DISK_DEVICE:-}
NAME=${ATTEST_DISK_NAME:-attest-data}
KEY=${ATTEST_DISK_KEY:-/run/attest-join/disk.key}
FORMAT=${ATTEST_DISK_FORMAT:-}

trap 'rm -f "$KEY" 2>/dev/null || :' EXIT INT TERM

[ -n "$DEVICE" ] || die 2 "ATTEST_DISK_DEVICE is not set"
printf '%s' "$NAME" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' || die 2 "ATTEST_DISK_NAME must be 1-64 of [A-Za-z0-9._-]"
case $FORMAT in ''|first-boot) ;; *) die 2 "ATTEST_DISK_FORMAT must be empty or first-boot" ;; esac
[ -f "$KEY" ] || die 1 "no disk key at $KEY (did attest-join run with --disk-key-out $KEY, and does the policy grant disk-key?)"
fs=$(stat -f -c %T "$(dirname "$KEY")")
case $fs in tmpfs|ramfs) ;; *) die 2 "$KEY is on $fs, not tmpfs: refusing to use a disk key that may have reached persistent storage" ;; esac
[ "$(wc -c < "$KEY" | tr -d ' ')" = 32 ] || die 1 "$KEY is not a 32-byte key"
[ -b "$DEVICE" ] || [ -f "$DEVICE" ] || die 1 "$DEVICE does not exist"

if [ -e "/dev/mapper/$NAME" ]; then
  log "$NAME is already open"
  exit 0
fi

if ! cryptsetup isLuks "$DEVICE" 2>/dev/null; then
  [ "$FORMAT" = first-boot ] || die 1 "$DEVICE is not a LUKS volume (set ATTEST_DISK_FORMAT=first-boot to create it on a blank device)"
  # Only a device with no signature at all (no filesystem, no partition table, no LUKS header).
  if [ -n "$(blkid -p -o value -s TYPE "$DEVICE" 2>/dev/null || :)" ] || [ -n "$(blkid -p -o value -s PTTYPE "$DEVICE" 2>/dev/null || :)" ]; then
    die 1 "$DEVICE carries data but no LUKS header: not formatting it"
  fi
  log "formatting $DEVICE as LUKS2 with the released key (first boot)"
  cryptsetup luksFormat --batch-mode --type luks2 --key-file "$KEY" "$DEVICE" || die 1 "luksFormat $DEVICE failed"
fi

cryptsetup open --type luks --key-file "$KEY" "$DEVICE" "$NAME" || die 1 "cryptsetup open $DEVICE failed (a key from another attestation, or a damaged header)"
log "opened $DEVICE as /dev/mapper/$NAME"
