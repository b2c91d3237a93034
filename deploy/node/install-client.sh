#!/bin/sh
# install-client.sh — install the attest-broker join client at boot, from the broker itself.
#
# Run once by cloud-init (deploy/cloud-init/*.yaml, runcmd) before attest-join.service. It takes
# its settings from /etc/attest-broker/join.env (ATTEST_ENV_FILE to override):
#   ATTEST_BROKER         https://host[:port] of the broker
#   ATTEST_CA_PIN         sha256:<hex> of the broker CA's SubjectPublicKeyInfo (kubeadm style)
#   ATTEST_CLIENT         attest-join.sh (POSIX shell; tpm2-tools, curl, openssl) or
#                         attest-join.mjs (single file; needs Node >= 20.19 on the image)
#   ATTEST_CLIENT_SHA256  optional: sha256:<hex> the client must have (recommended: pins the exact
#                         client build in user-data; terraform/modules/user-data fills it in)
#
# Nothing comes from a package registry. The client is fetched from GET <broker>/v1/client/<name>
# over TLS whose CA is the certificate with the pinned SPKI in the chain the broker serves (the
# same pin the join uses). Its SHA-256 must equal ATTEST_CLIENT_SHA256 when given. Otherwise it
# must equal the Repr-Digest the broker sent over that pinned connection (RFC 9530). A mismatch
# installs nothing and exits 1. It is installed as /usr/local/bin/attest-join (ATTEST_CLIENT_DEST
# to override) only after the check.
#
# Exit: 0 installed; 1 refused (digest, Node too old); 2 usage; 3 broker unreachable until the
# deadline (ATTEST_INSTALL_DEADLINE seconds, default 300).
set -eu
umask 022

log() { printf 'install-client.sh: %s\n' "$*" >&2; }
die() { code=$1; shift; log "error: $*"; exit "$code"; }

ENV_FILE=${ATTEST_ENV_FILE:-/etc/attest-broker/join.env}
[ -r "$ENV_FILE" ] || die 2 "$ENV_FILE is missing (user-data writes it)"
# shellcheck disable=SC1090 # written by cloud-init from user-data: KEY=VALUE lines
. "$ENV_FILE"
BROKER=${ATTEST_BROKER:-}
CA_PIN=${ATTEST_CA_PIN:-}
CLIENT=${ATTEST_CLIENT:-attest-join.sh}
WANT=${ATTEST_CLIENT_SHA256:-}
DEST=${ATTEST_CLIENT_DEST:-/usr/local/bin/attest-join}
DEADLINE=${ATTEST_INSTALL_DEADLINE:-300}

case $BROKER in https://*) ;; *) die 2 "ATTEST_BROKER must be an https:// URL" ;; esac
PIN_HEX=$(printf '%s' "$CA_PIN" | sed -n 's/^sha256:\([0-9a-fA-F]\{64\}\)$/\1/p' | tr 'A-F' 'a-f')
[ -n "$PIN_HEX" ] || die 2 "ATTEST_CA_PIN must be sha256:<64 hex digits>"
case $CLIENT in attest-join.sh|attest-join.mjs) ;; *) die 2 "ATTEST_CLIENT must be attest-join.sh or attest-join.mjs" ;; esac
if [ -n "$WANT" ]; then
  WANT_HEX=$(printf '%s' "$WANT" | sed -n 's/^sha256:\([0-9a-fA-F]\{64\}\)$/\1/p' | tr 'A-F' 'a-f')
  [ -n "$WANT_HEX" ] || die 2 "ATTEST_CLIENT_SHA256 must be sha256:<64 hex digits>"
fi
case $DEADLINE in ''|*[!0-9]*) die 2 "ATTEST_INSTALL_DEADLINE must be whole seconds" ;; esac
for t in curl openssl awk od sed; do command -v "$t" >/dev/null 2>&1 || die 1 "$t is required"; done
if [ "$CLIENT" = attest-join.mjs ]; then
  command -v node >/dev/null 2>&1 || die 1 "attest-join.mjs needs Node >= 20.19 and this image has none; use ATTEST_CLIENT=attest-join.sh (generic TPM) or an image with Node"
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
    || die 1 "attest-join.mjs needs Node >= 20.19; this image has $(node --version)"
fi

END=$(( $(date +%s) + DEADLINE ))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/attest-install.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

HOSTPORT=$(printf '%s' "$BROKER" | sed -e 's#^https://##' -e 's#/.*$##')
HOST=${HOSTPORT%:*}
PORT=${HOSTPORT##*:}
[ "$PORT" = "$HOSTPORT" ] && PORT=443
BASE=$(printf '%s' "$BROKER" | sed 's#/*$##')

# pinned_ca: the certificate of the served chain whose SPKI has the pinned SHA-256 → $WORK/ca.pem.
pinned_ca() {
  openssl s_client -connect "$HOST:$PORT" -servername "$HOST" -showcerts </dev/null 2>/dev/null \
    | awk -v dir="$WORK" '/-----BEGIN CERTIFICATE-----/ { n++; f = dir "/chain-" n ".pem" } f { print > f } /-----END CERTIFICATE-----/ { f = "" }'
  for c in "$WORK"/chain-*.pem; do
    [ -f "$c" ] || continue
    h=$(openssl x509 -in "$c" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -r | cut -d' ' -f1)
    if [ "$h" = "$PIN_HEX" ]; then cp "$c" "$WORK/ca.pem"; return 0; fi
  done
  return 1
}

delay=2
while :; do
  rm -f "$WORK"/chain-*.pem "$WORK/ca.pem" "$WORK/client" "$WORK/headers"
  if pinned_ca; then
    code=$(curl --silent --show-error --proto '=https' --cacert "$WORK/ca.pem" --max-time 60 --retry 0 \
      -D "$WORK/headers" -o "$WORK/client" -w '%{http_code}' "$BASE/v1/client/$CLIENT" 2>"$WORK/curl.err" || :)
    [ "$code" = 200 ] && break
    [ "$code" = 404 ] && die 1 "the broker does not serve $CLIENT (GET /v1/client/$CLIENT: 404); check ATTEST_CLIENT and the broker's clients.dir"
    log "GET /v1/client/$CLIENT: ${code:-no answer} $(head -c 200 "$WORK/curl.err" 2>/dev/null || :)"
  else
    log "no certificate with the pinned SPKI in the chain $HOST:$PORT serves (broker not up yet, or a wrong ATTEST_CA_PIN)"
  fi
  [ "$(date +%s)" -lt "$END" ] || die 3 "gave up after ${DEADLINE}s: the broker at $BROKER could not be reached over the pinned TLS connection"
  sleep "$delay"
  delay=$((delay * 2)); [ $delay -gt 30 ] && delay=30
done

GOT=$(openssl dgst -sha256 -r "$WORK/client" | cut -d' ' -f1)
if [ -n "$WANT" ]; then
  [ "$GOT" = "$WANT_HEX" ] || die 1 "$CLIENT has sha256:$GOT, but user-data pins sha256:$WANT_HEX: not installed (wrong broker build, or tampered)"
else
  # Repr-Digest: sha-256=:<base64>: (RFC 9530), sent over the pinned connection.
  b64=$(tr -d '\r' < "$WORK/headers" | sed -n 's/^[Rr][Ee][Pp][Rr]-[Dd][Ii][Gg][Ee][Ss][Tt]:[ ]*sha-256=:\([A-Za-z0-9+/=]*\):.*$/\1/p' | head -n 1)
  [ -n "$b64" ] || die 1 "the broker sent no Repr-Digest for $CLIENT: not installed"
  SENT=$(printf '%s' "$b64" | openssl base64 -d -A | od -An -v -tx1 | tr -d ' \n')
  [ "$GOT" = "$SENT" ] || die 1 "$CLIENT does not match the digest the broker sent (sha256:$SENT, got sha256:$GOT): not installed"
  log "warning: no ATTEST_CLIENT_SHA256 in user-data; trusted the pinned TLS connection and its Repr-Digest (sha256:$GOT)"
fi

mkdir -p "$(dirname "$DEST")"
tmp=$(mktemp "$(dirname "$DEST")/.attest-join.XXXXXX")
cat "$WORK/client" > "$tmp"
chmod 0755 "$tmp"
mv -f "$tmp" "$DEST"
log "installed $CLIENT (sha256:$GOT) as $DEST"
