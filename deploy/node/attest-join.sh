#!/bin/sh
# attest-join.sh — POSIX shell join client for attest-broker (protocol v1, generic `tpm` format).
#
# Needs only tpm2-tools, curl and openssl (plus awk, od, sed from the base system). It sends no
# ephemeral key (binding = nonce, protocol §2); the broker seals the release to this TPM instead
# (`release.tpmSeal: when-available` or `require`: TPM2_MakeCredential to the EK and the AK that
# quoted, opened here with tpm2_activatecredential and the openssl command line), so the cluster
# need not allow unsealed release. Where a cluster's policy does allow it, an unsealed release
# is accepted too (with a warning). The TypeScript client (`attest-broker join` /
# attest-join.mjs) additionally seals to an ephemeral key.
#
# Usage:
#   attest-join.sh --broker URL --ca-pin sha256:HEX --cluster NAME [--platform auto|generic] [--out FILE] [--deadline SECONDS]
#     [--kubelet-config-out FILE.conf] [--kubeadm-config-out FILE] [--node-name-out FILE]
#     [--disk-key-out FILE [--disk-key-wrapped FILE] [--disk-key-only]]
# or the same through ATTEST_BROKER, ATTEST_CA_PIN, ATTEST_CLUSTER, ATTEST_OUT, ATTEST_DEADLINE,
# ATTEST_KUBELET_CONFIG_OUT, ATTEST_KUBEADM_CONFIG_OUT, ATTEST_NODE_NAME_OUT.
#
# Bootstrap paths (docs/join.md): --kubelet-config-out writes a KubeletConfiguration drop-in for
# the kubelet's --config-dir, --kubeadm-config-out a kubeadm v1beta4 JoinConfiguration (file
# discovery with --out), --node-name-out the released node name. Same bytes as the TypeScript
# client (deploy/node/client/bootstrap.ts); all 0600, all before the kubeconfig, which is last.
#
# TLS: the pin is SHA-256 of the broker CA's SubjectPublicKeyInfo (kubeadm style). The served
# chain is read once with `openssl s_client`; the certificate with the pinned SPKI becomes the
# only CA (`curl --cacert`), the leaf must verify against it (`openssl verify`), and every
# request also pins that leaf's key (`curl --pinnedpubkey sha256//…`).
#
#
# Exit: 0 joined; 1 refused or failed; 2 usage; 3 broker unreachable / deadline.
set -eu
umask 077

BROKER=${ATTEST_BROKER:-}
CA_PIN=${ATTEST_CA_PIN:-}
CLUSTER=${ATTEST_CLUSTER:-}
OUT=${ATTEST_OUT:-/var/lib/kubelet/bootstrap-kubeconfig}
DEADLINE=${ATTEST_DEADLINE:-300}
EVENT_LOG=${ATTEST_EVENT_LOG:-/sys/kernel/security/tpm0/binary_bios_measurements}
KUBELET_CONFIG_OUT=${ATTEST_KUBELET_CONFIG_OUT:-}
KUBEADM_CONFIG_OUT=${ATTEST_KUBEADM_CONFIG_OUT:-}
NODE_NAME_OUT=${ATTEST_NODE_NAME_OUT:-}
PLATFORM=${ATTEST_PLATFORM:-auto}
DISK_KEY_OUT=${ATTEST_DISK_KEY_OUT:-}
DISK_KEY_WRAPPED=${ATTEST_DISK_KEY_WRAPPED:-}
DISK_KEY_ONLY=
NL='
'

log() { printf 'attest-join.sh: %s\n' "$*" >&2; }
die() { code=$1; shift; log "error: $*"; exit "$code"; }

while [ $# -gt 0 ]; do
  case $1 in
    --broker) BROKER=${2:-}; shift 2 ;;
    --ca-pin) CA_PIN=${2:-}; shift 2 ;;
    --cluster) CLUSTER=${2:-}; shift 2 ;;
    --out) OUT=${2:-}; shift 2 ;;
    --deadline) DEADLINE=${2:-}; shift 2 ;;
    --event-log) EVENT_LOG=${2:-}; shift 2 ;;
    --no-event-log) EVENT_LOG=""; shift ;;
    --kubelet-config-out) KUBELET_CONFIG_OUT=${2:-}; shift 2 ;;
    --kubeadm-config-out) KUBEADM_CONFIG_OUT=${2:-}; shift 2 ;;
    --node-name-out) NODE_NAME_OUT=${2:-}; shift 2 ;;
    --platform) PLATFORM=${2:-}; shift 2 ;;
    --disk-key-out) DISK_KEY_OUT=${2:-}; shift 2 ;;
    --disk-key-wrapped) DISK_KEY_WRAPPED=${2:-}; shift 2 ;;
    --disk-key-only) DISK_KEY_ONLY=1; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) die 2 "unknown argument: $1" ;;
  esac
done

if [ -z "$BROKER" ] || [ -z "$CA_PIN" ] || [ -z "$CLUSTER" ]; then
  die 2 "--broker, --ca-pin and --cluster are required"
fi
case $BROKER in https://*) ;; *) die 2 "--broker must be an https:// URL" ;; esac
PIN_HEX=$(printf '%s' "$CA_PIN" | sed -n 's/^sha256:\([0-9a-fA-F]\{64\}\)$/\1/p' | tr 'A-F' 'a-f')
[ -n "$PIN_HEX" ] || die 2 "--ca-pin must be sha256:<64 hex digits>"
printf '%s' "$CLUSTER" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' || die 2 "--cluster must be 1-128 of [A-Za-z0-9._-]"
# Seconds, optionally written 300s or 5m (as the TypeScript client and the systemd unit take it).
case $DEADLINE in *s) DEADLINE=${DEADLINE%s} ;; *m) case ${DEADLINE%m} in ''|*[!0-9]*) ;; *) DEADLINE=$(( ${DEADLINE%m} * 60 )) ;; esac ;; esac
case $DEADLINE in ''|*[!0-9]*) die 2 "--deadline must be whole seconds (or Ns, Nm)" ;; esac
# Disk key (docs/join.md, "Disk key"): the raw 32 bytes to --disk-key-out (0600; put it on tmpfs),
# the wrapped form beside it (or --disk-key-wrapped) to send back next boot. --disk-key-only asks
# for the disk key alone: no token, no kubeconfig (every boot of a node with encrypted state).
if [ -n "$DISK_KEY_ONLY" ] && [ -z "$DISK_KEY_OUT" ]; then die 2 "--disk-key-only needs --disk-key-out"; fi
if [ -n "$DISK_KEY_ONLY" ] && { [ -n "$KUBELET_CONFIG_OUT" ] || [ -n "$KUBEADM_CONFIG_OUT" ] || [ -n "$NODE_NAME_OUT" ]; }; then
  die 2 "--disk-key-only writes the disk key alone: drop the bootstrap-path outputs"
fi
[ -n "$DISK_KEY_OUT" ] && [ -z "$DISK_KEY_WRAPPED" ] && DISK_KEY_WRAPPED="$DISK_KEY_OUT.wrapped"
WANT='"bootstrap-token"'
[ -n "$DISK_KEY_OUT" ] && WANT='"bootstrap-token","disk-key"'
[ -n "$DISK_KEY_ONLY" ] && WANT='"disk-key"'
WRAPPED_IN=""
if [ -n "$DISK_KEY_WRAPPED" ] && [ -r "$DISK_KEY_WRAPPED" ]; then
  WRAPPED_IN=$(tr -d ' \n' < "$DISK_KEY_WRAPPED")
  printf '%s' "$WRAPPED_IN" | grep -Eq '^[A-Za-z0-9_-]{1,8192}$' || WRAPPED_IN=""
fi
# This client gathers generic TPM 2.0 evidence (EK certificate + AK quote, the `tpm` format).
case $PLATFORM in
  auto|generic) ;;
  azure|gcp|aws) die 2 "--platform $PLATFORM: this shell client gathers generic TPM evidence only; use the single-file client (attest-join.mjs, Node >= 20.19) for $PLATFORM evidence" ;;
  *) die 2 "--platform must be auto or generic" ;;
esac
# Paths that go into YAML: absolute, and nothing YAML could read as syntax.
yaml_safe_path() { case $1 in /*) ;; *) return 1 ;; esac; case $1 in *[!A-Za-z0-9._/+-]*) return 1 ;; esac; }
KUBELET_CONFIG_DIR=""
if [ -n "$KUBELET_CONFIG_OUT" ]; then
  case $KUBELET_CONFIG_OUT in *.conf) ;; *) die 2 "--kubelet-config-out must name a *.conf file (the kubelet reads only those from --config-dir)" ;; esac
  KUBELET_CONFIG_DIR=$(dirname "$KUBELET_CONFIG_OUT")
fi
if [ -n "$KUBEADM_CONFIG_OUT" ]; then
  for p in "$OUT" ${KUBELET_CONFIG_DIR:+"$KUBELET_CONFIG_DIR"}; do
    yaml_safe_path "$p" || die 2 "$p: with --kubeadm-config-out, --out and the --kubelet-config-out directory must be absolute paths of [A-Za-z0-9._/+-]"
  done
fi
for t in tpm2_createek tpm2_createak tpm2_quote curl openssl awk od; do
  command -v "$t" >/dev/null 2>&1 || die 1 "$t is required"
done

START=$(date +%s)
END=$((START + DEADLINE))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/attest-join.XXXXXX")
trap 'tpm2_flushcontext -t >/dev/null 2>&1 || :; tpm2_flushcontext -s >/dev/null 2>&1 || :; rm -rf "$WORK"' EXIT INT TERM

remaining() { echo $((END - $(date +%s))); }

# --- encodings -------------------------------------------------------------------------------
b64url_file() { openssl base64 -A -in "$1" | tr '+/' '-_' | tr -d '='; }
b64url_decode_to() { # $1 text, $2 output file
  s=$(printf '%s' "$1" | tr '_-' '/+')
  case $(( ${#s} % 4 )) in 2) s="$s==" ;; 3) s="$s=" ;; 1) return 1 ;; esac
  printf '%s' "$s" | openssl base64 -d -A > "$2"
}
hex_file() { od -An -v -tx1 "$1" | tr -d ' \n'; }

# json_str FILE KEY: the first string value of "KEY" in FILE, JSON escapes decoded
# (\" \\ \/ \b \f \n \r \t and \u00XX; the broker's answers are ASCII).
json_str() {
  awk -v key="$2" '
    BEGIN { RS = "\001" }
    {
      pat = "\"" key "\"[ \t\r\n]*:[ \t\r\n]*\""
      if (!match($0, pat)) exit 1
      s = substr($0, RSTART + RLENGTH); out = ""; i = 1; n = length(s)
      while (i <= n) {
        c = substr(s, i, 1)
        if (c == "\"") { printf "%s", out; exit 0 }
        if (c == "\\") {
          e = substr(s, i + 1, 1); i += 2
          if (e == "n") out = out "\n"; else if (e == "t") out = out "\t"; else if (e == "r") out = out "\r"
          else if (e == "b") out = out "\b"; else if (e == "f") out = out "\f"
          else if (e == "u") { h = tolower(substr(s, i, 4)); i += 4; v = 0
            for (k = 1; k <= 4; k++) v = v * 16 + index("0123456789abcdef", substr(h, k, 1)) - 1
            if (v < 128) out = out sprintf("%c", v); else exit 2 }
          else out = out e
          continue
        }
        out = out c; i++
      }
      exit 1
    }' "$1"
}

# --- pinned TLS ------------------------------------------------------------------------------
HOSTPORT=$(printf '%s' "$BROKER" | sed -e 's#^https://##' -e 's#/.*$##')
HOST=${HOSTPORT%:*}
PORT=${HOSTPORT##*:}
[ "$PORT" = "$HOSTPORT" ] && PORT=443
BASE=$(printf '%s' "$BROKER" | sed 's#/*$##')

discover_ca() {
  sni=""
  case $HOST in *[!0-9.]*) sni="-servername $HOST" ;; esac
  # shellcheck disable=SC2086 # $sni is intentionally split
  openssl s_client -connect "$HOST:$PORT" $sni -showcerts </dev/null 2>/dev/null \
    | awk -v dir="$WORK" '/-----BEGIN CERTIFICATE-----/ { n++; f = dir "/chain-" n ".pem" } f { print > f } /-----END CERTIFICATE-----/ { close(f); f = "" }'
  [ -f "$WORK/chain-1.pem" ] || return 3
  for c in "$WORK"/chain-*.pem; do
    h=$(openssl x509 -in "$c" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -r | cut -d' ' -f1)
    if [ "$h" = "$PIN_HEX" ]; then cp "$c" "$WORK/ca.pem"; break; fi
  done
  [ -f "$WORK/ca.pem" ] || return 4
  cat "$WORK"/chain-*.pem > "$WORK/untrusted.pem"
  openssl verify -CAfile "$WORK/ca.pem" -untrusted "$WORK/untrusted.pem" "$WORK/chain-1.pem" >/dev/null 2>&1 || return 5
  LEAF_PIN=$(openssl x509 -in "$WORK/chain-1.pem" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | openssl base64 -A)
}

# post PATH JSONFILE → sets HTTP_STATUS, body in $WORK/resp, headers in $WORK/hdr; curl exit in CURL_RC
post() {
  t=$(remaining); [ "$t" -gt 30 ] && t=30; [ "$t" -lt 1 ] && t=1
  CURL_RC=0
  HTTP_STATUS=$(curl -sS --proto '=https' --cacert "$WORK/ca.pem" --pinnedpubkey "sha256//$LEAF_PIN" \
    --max-time "$t" -o "$WORK/resp" -D "$WORK/hdr" -w '%{http_code}' \
    -H 'content-type: application/json' -H 'accept: application/json, application/problem+json' \
    --data-binary "@$2" "$BASE$1") || CURL_RC=$?
}

ATTEMPT=0
backoff() { # $1 = minimum seconds (Retry-After); exits 3 past the deadline
  ATTEMPT=$((ATTEMPT + 1)); cap=$((1 << (ATTEMPT > 4 ? 4 : ATTEMPT))); [ "$cap" -gt 15 ] && cap=15
  s=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % (cap + 1) )); [ "$s" -lt "${1:-0}" ] && s=${1:-0}
  [ "$s" -lt "$(remaining)" ] || die 3 "deadline exceeded ($2)"
  log "$2; retrying in ${s}s"; sleep "$s"
}
retry_after() { sed -n 's/^[Rr]etry-[Aa]fter:[ ]*\([0-9]\{1,5\}\).*$/\1/p' "$WORK/hdr" 2>/dev/null | head -n1; }
problem_code() { json_str "$WORK/resp" code 2>/dev/null || echo "(no code)"; }

until discover_ca; do
  rc=$?
  [ $rc -eq 4 ] && die 1 "JOIN_TLS_PIN_MISMATCH: no certificate in the broker's chain matches --ca-pin"
  [ $rc -eq 5 ] && die 1 "JOIN_TLS_VERIFY_FAILED: the broker's certificate does not verify against the pinned CA"
  backoff 0 "broker unreachable at $HOST:$PORT"
done

# --- one attempt: challenge → evidence → attest (→ activation) -------------------------------
get_challenge() { # sets CH_ID and BINDING
  printf '{"provider":"tpm","cluster":"%s"}' "$CLUSTER" > "$WORK/ch.json"
  while :; do
    post /v1/challenge "$WORK/ch.json"
    if [ "$CURL_RC" -ne 0 ]; then backoff 0 "challenge: network error (curl $CURL_RC)"; continue; fi
    case $HTTP_STATUS in
      200|201) break ;;
      429|5??) backoff "$(retry_after)" "challenge: HTTP $HTTP_STATUS $(problem_code)"; continue ;;
      *) die 1 "JOIN_REJECTED: challenge refused: HTTP $HTTP_STATUS $(problem_code)" ;;
    esac
  done
  CH_ID=$(json_str "$WORK/resp" challengeId) || die 1 "JOIN_BAD_RESPONSE: no challengeId"
  NONCE=$(json_str "$WORK/resp" nonce) || die 1 "JOIN_BAD_RESPONSE: no nonce"
  printf '%s' "$CH_ID" | grep -Eq '^[A-Za-z0-9_.:-]{1,256}$' || die 1 "JOIN_BAD_RESPONSE: odd challengeId"
  b64url_decode_to "$NONCE" "$WORK/nonce.bin" || die 1 "JOIN_BAD_RESPONSE: nonce is not base64url"
  [ "$(wc -c < "$WORK/nonce.bin" | tr -d ' ')" = 32 ] || die 1 "JOIN_BAD_RESPONSE: nonce is not 32 bytes"
  # Unsealed mode: binding = nonce (protocol §2).
  BINDING=$(hex_file "$WORK/nonce.bin")
}

make_keys() { # EK (RSA, matches the EK certificate at NV 0x01c00002) and a fresh AK under it
  tpm2_createek -c "$WORK/ek.ctx" -G rsa -u "$WORK/ek.pub" -f tss >/dev/null || die 1 "JOIN_TPM_TOOL_FAILED: tpm2_createek"
  tpm2_flushcontext -t >/dev/null 2>&1 || :
  tpm2_createak -C "$WORK/ek.ctx" -c "$WORK/ak.ctx" -G ecc -g sha256 -s ecdsa -u "$WORK/ak.pub" -n "$WORK/ak.name" -r "$WORK/ak.priv" -f tss >/dev/null \
    || die 1 "JOIN_TPM_TOOL_FAILED: tpm2_createak"
  tpm2_flushcontext -t >/dev/null 2>&1 || :; tpm2_flushcontext -s >/dev/null 2>&1 || :
}

build_attest() { # $1 = extra evidence members (e.g. the activation answer), written to attest.json
  tpm2_quote -c "$WORK/ak.ctx" -l sha256:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23 -q "$BINDING" -g sha256 \
    -m "$WORK/q.msg" -s "$WORK/q.sig" -o "$WORK/q.pcrs" -F values >/dev/null || die 1 "JOIN_TPM_TOOL_FAILED: tpm2_quote"
  tpm2_flushcontext -t >/dev/null 2>&1 || :; tpm2_flushcontext -s >/dev/null 2>&1 || :
  PCRS=$(hex_file "$WORK/q.pcrs" | awk '{ for (i = 0; i < 24; i++) printf "%s\"%d\":\"%s\"", (i ? "," : ""), i, substr($0, i * 64 + 1, 64) }')
  {
    printf '{"challengeId":"%s","provider":"tpm","format":"tpm","want":[%s],' "$CH_ID" "$WANT"
    [ -n "$WRAPPED_IN" ] && printf '"diskKey":{"wrapped":"%s"},' "$WRAPPED_IN"
    printf '"evidence":{'
    printf '"ak_public":"%s","ek_public":"%s",' "$(b64url_file "$WORK/ak.pub")" "$(b64url_file "$WORK/ek.pub")"
    printf '"quote":{"message":"%s","signature":"%s"},' "$(b64url_file "$WORK/q.msg")" "$(b64url_file "$WORK/q.sig")"
    printf '"pcrs":{"sha256":{%s}}' "$PCRS"
    if [ -n "$EVENT_LOG" ] && [ -r "$EVENT_LOG" ]; then cat "$EVENT_LOG" > "$WORK/evlog" && printf ',"event_log":"%s"' "$(b64url_file "$WORK/evlog")"; fi
    if size=$(tpm2_nvreadpublic 0x01c00002 2>/dev/null | sed -n 's/^ *size: *\([0-9]*\)$/\1/p') && [ -n "$size" ] \
      && tpm2_nvread 0x01c00002 -C o -s "$size" -o "$WORK/ekcert.nv" >/dev/null 2>&1; then
      # Trim NV padding to the DER length.
      openssl x509 -inform der -in "$WORK/ekcert.nv" -outform der -out "$WORK/ekcert.der" 2>/dev/null \
        && printf ',"ek_certificate":"%s"' "$(b64url_file "$WORK/ekcert.der")"
      # The manufacturer's chain, if the TPM has one (TCG NV range 0x01c00100-0x01c001ff; the
      # first certificate of each index): intermediates only, the broker pins the roots.
      sep=""; n=0
      for idx in $(tpm2_getcap handles-nv-index 2>/dev/null | sed -n 's/^- *0x\(1[Cc]001[0-9A-Fa-f][0-9A-Fa-f]\)$/0x0\1/p'); do
        [ $n -lt 8 ] || break
        isz=$(tpm2_nvreadpublic "$idx" 2>/dev/null | sed -n 's/^ *size: *\([0-9]*\)$/\1/p')
        if [ -z "$isz" ] || ! tpm2_nvread "$idx" -C o -s "$isz" -o "$WORK/chain.nv" >/dev/null 2>&1 \
          || ! openssl x509 -inform der -in "$WORK/chain.nv" -outform der -out "$WORK/chain.der" 2>/dev/null; then
          continue
        fi
        if [ $n -eq 0 ]; then printf ',"ek_intermediates":['; fi
        printf '%s"%s"' "$sep" "$(b64url_file "$WORK/chain.der")"; sep=","; n=$((n + 1))
      done
      if [ $n -gt 0 ]; then printf ']'; fi
    fi
    printf '%s}}' "$1"
  } > "$WORK/attest.json"
}

send_attest() {
  while :; do
    post /v1/attest "$WORK/attest.json"
    if [ "$CURL_RC" -ne 0 ]; then
      # curl 6/7 (resolve/connect) mean nothing was sent: resend. Anything later: the
      # challenge may be spent and a token issued: do not retry blindly.
      case $CURL_RC in 6|7) backoff 0 "attest: network error before sending (curl $CURL_RC)"; continue ;; esac
      die 1 "JOIN_OUTCOME_UNKNOWN: attest request sent but no answer (curl $CURL_RC)"
    fi
    [ "$HTTP_STATUS" = 429 ] && { backoff "$(retry_after)" "attest: HTTP 429"; continue; }
    return 0
  done
}

# activate CODE FILE OUT: TPM2_ActivateCredential of the tpm2-tools credential FILE (magic
# 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET) with this attempt's EK and AK
# (the EK's policy is PolicySecret(endorsement)); the secret to OUT. Failures name CODE.
activate() {
  [ "$(od -An -N8 -tx1 "$2" | tr -d ' \n')" = badcc0de00000001 ] || die 1 "$1: not a tpm2-tools credential file"
  tpm2_startauthsession --policy-session -S "$WORK/act-session.ctx" >/dev/null || die 1 "JOIN_TPM_TOOL_FAILED: tpm2_startauthsession"
  tpm2_policysecret -S "$WORK/act-session.ctx" -c e >/dev/null || die 1 "JOIN_TPM_TOOL_FAILED: tpm2_policysecret"
  tpm2_activatecredential -c "$WORK/ak.ctx" -C "$WORK/ek.ctx" -i "$2" -o "$3" -P "session:$WORK/act-session.ctx" >/dev/null \
    || die 1 "$1: this TPM cannot open it (tpm2_activatecredential failed)"
  tpm2_flushcontext "$WORK/act-session.ctx" >/dev/null 2>&1 || :; tpm2_flushcontext -t >/dev/null 2>&1 || :
}

attempt() {
  get_challenge
  make_keys
  build_attest ""
  send_attest

  if [ "$(problem_code)" = ACTIVATION_REQUIRED ]; then
    # docs/tpm.md: activate, then a NEW challenge and a new quote by the same AK, with the
    # recovered secret in evidence.activation.
    log "the broker asked for credential activation"
    ACT_ID=$(json_str "$WORK/resp" id) || die 1 "JOIN_ACTIVATION_INVALID: no activation id"
    printf '%s' "$ACT_ID" | grep -Eq '^[A-Za-z0-9_-]{8,128}$' || die 1 "JOIN_ACTIVATION_INVALID: odd activation id"
    b64url_decode_to "$(json_str "$WORK/resp" credential)" "$WORK/cred.blob" || die 1 "JOIN_ACTIVATION_INVALID: credential"
    activate JOIN_ACTIVATION_INVALID "$WORK/cred.blob" "$WORK/cred.out"
    get_challenge
    build_attest ",\"activation\":{\"id\":\"$ACT_ID\",\"secret\":\"$(b64url_file "$WORK/cred.out")\"}"
    send_attest
  fi

  case $HTTP_STATUS in
    200) return 0 ;;
    5??) return 10 ;; # start over from a new challenge
    404|410) case $(problem_code) in CHALLENGE_*) return 10 ;; esac ;;
  esac
  die 1 "JOIN_REJECTED: the broker refused this node: HTTP $HTTP_STATUS $(problem_code)"
}

while :; do
  rc=0; attempt || rc=$?
  [ $rc -eq 0 ] && break
  backoff 0 "attest: HTTP $HTTP_STATUS; starting over with a new challenge"
done

# --- release (sealed to this TPM, or unsealed where policy allows) → bootstrap-path files, then
# the kubeconfig; atomically, 0600 ------------------------------------------------------------
# json_exact KEY: like json_str on the response, but keeps trailing newlines (a value that
# carries one must fail the checks below, as in the TypeScript client, not be trimmed).
json_exact() { json_str "$WORK/resp" "$1" && echo x; }
# one_line VALUE REGEX: VALUE is a single line matching the extended REGEX.
one_line() { case $1 in *"$NL"*) return 1 ;; esac; printf '%s' "$1" | grep -Eq "$2"; }

# hex_to_file HEX FILE: the bytes a lower-case hex string spells (short inputs only).
hex_to_file() {
  h=$1; : > "$2"
  while [ -n "$h" ]; do
    b=${h%"${h#??}"}; h=${h#??}
    # shellcheck disable=SC2059 # the format is an octal escape built from checked hex
    printf "\\$(printf '%03o' "0x$b")" >> "$2"
  done
}

# open_tpm_sealed JWE: the release sealed to this TPM (broker release.tpmSeal; docs/protocol.md §4):
# compact JWE, alg dir, enc A128CBC-HS256 (RFC 7518 §5.2.3), the 32-byte key recovered with
# tpm2_activatecredential from the header's tpm_cred — only this TPM, with the AK that quoted,
# can. The tag (HMAC-SHA-256 over AAD ‖ IV ‖ ciphertext ‖ AL, first 16 bytes) is checked before
# anything is decrypted. Writes the release JSON to $WORK/resp.
open_tpm_sealed() {
  jwe=$1
  printf '%s' "$jwe" | grep -Eq '^[A-Za-z0-9_-]+\.\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' \
    || die 1 "JOIN_RELEASE_INVALID: the sealed release is not a compact JWE with direct key agreement"
  H=${jwe%%.*}; rest=${jwe#*..}; IV=${rest%%.*}; rest=${rest#*.}; CT=${rest%%.*}; TAG=${rest#*.}
  b64url_decode_to "$H" "$WORK/jwe.hdr" || die 1 "JOIN_RELEASE_INVALID: JWE header"
  for kv in typ=application/attest-broker.tpm-sealed alg=dir enc=A128CBC-HS256 cty=application/attest-broker.release+json; do
    [ "$(json_str "$WORK/jwe.hdr" "${kv%%=*}")" = "${kv#*=}" ] || die 1 "JOIN_RELEASE_INVALID: not a TPM-sealed release this client can open (${kv%%=*})"
  done
  b64url_decode_to "$(json_str "$WORK/jwe.hdr" tpm_cred)" "$WORK/seal.blob" || die 1 "JOIN_RELEASE_INVALID: tpm_cred"
  activate "JOIN_RELEASE_INVALID: the sealed release" "$WORK/seal.blob" "$WORK/seal.key"
  K=$(hex_file "$WORK/seal.key"); rm -f "$WORK/seal.key"
  [ ${#K} -eq 64 ] || die 1 "JOIN_RELEASE_INVALID: the sealed key is not 32 bytes"
  MAC_KEY=$(printf '%s' "$K" | cut -c1-32); ENC_KEY=$(printf '%s' "$K" | cut -c33-64); K=""
  for part in "$IV:iv" "$CT:ct" "$TAG:tag"; do
    b64url_decode_to "${part%:*}" "$WORK/jwe.${part##*:}" || die 1 "JOIN_RELEASE_INVALID: JWE ${part##*:} is not base64url"
  done
  for f in iv tag; do [ "$(wc -c < "$WORK/jwe.$f" | tr -d ' ')" = 16 ] || die 1 "JOIN_RELEASE_INVALID: JWE $f is not 16 bytes"; done
  printf '%s' "$H" > "$WORK/jwe.mac"
  cat "$WORK/jwe.iv" "$WORK/jwe.ct" >> "$WORK/jwe.mac"
  hex_to_file "$(printf '%016x' $((${#H} * 8)))" "$WORK/jwe.al"
  cat "$WORK/jwe.al" >> "$WORK/jwe.mac"
  want=$(openssl dgst -sha256 -mac HMAC -macopt "hexkey:$MAC_KEY" -binary "$WORK/jwe.mac" | od -An -v -tx1 | tr -d ' \n' | cut -c1-32)
  [ "$want" = "$(hex_file "$WORK/jwe.tag")" ] || die 1 "JOIN_RELEASE_INVALID: the sealed release's tag does not verify"
  openssl enc -d -aes-128-cbc -K "$ENC_KEY" -iv "$(hex_file "$WORK/jwe.iv")" -in "$WORK/jwe.ct" -out "$WORK/resp" \
    || die 1 "JOIN_RELEASE_INVALID: cannot decrypt the sealed release"
  MAC_KEY=""; ENC_KEY=""
}

if grep -q '"release"[ ]*:[ ]*"' "$WORK/resp"; then
  open_tpm_sealed "$(json_str "$WORK/resp" release)"
  log "release sealed to this TPM opened"
else
  grep -q '"release"[ ]*:[ ]*{' "$WORK/resp" || die 1 "JOIN_RELEASE_INVALID: no release in the answer"
  log "warning: the broker sent the release unsealed (the cluster's policy allows it); set release.tpmSeal on the broker to seal it to this TPM"
fi
NODE=$(json_exact nodeName) || die 1 "JOIN_RELEASE_INVALID: no nodeName"
NODE=${NODE%x}
# A DNS-1123 subdomain: the kubelet registers under it and it goes into configuration files.
if [ ${#NODE} -gt 253 ] || ! one_line "$NODE" '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'; then
  die 1 "JOIN_RELEASE_INVALID: nodeName is not a DNS-1123 subdomain"
fi
# The broker echoes the challenge nonce it answers: refuse a release for another attempt.
REL_NONCE=$(json_str "$WORK/resp" nonce 2>/dev/null || :)
if [ -n "$REL_NONCE" ] && [ "$REL_NONCE" != "$NONCE" ]; then die 1 "JOIN_RELEASE_INVALID: the release answers another challenge"; fi

# write_atomic SOURCE DEST: a 0600 temporary file beside DEST, synced, then renamed over it.
write_atomic() {
  d=$(dirname "$2")
  mkdir -p "$d" 2>/dev/null || return 1
  t=$(mktemp "$d/.$(basename "$2").XXXXXX" 2>/dev/null) || return 1
  if cat "$1" > "$t" && chmod 0600 "$t" && { sync "$t" 2>/dev/null || sync; } && mv -f "$t" "$2"; then return 0; fi
  rm -f "$t"
  return 1
}

# The disk key: first of the files, checked before anything is written.
if [ -n "$DISK_KEY_OUT" ]; then
  grep -q '"diskKeyForRecipient"' "$WORK/resp" && die 1 "JOIN_DISK_KEY_MISSING: the broker sent the disk key in the KMS Recipient form, which this client cannot open; configure the broker with nitroRecipient: false"
  grep -q '"diskKey"[ ]*:[ ]*{' "$WORK/resp" || die 1 "JOIN_DISK_KEY_MISSING: the release carries no disk key (does the policy grant disk-key?)"
  DK=$(json_exact key) || die 1 "JOIN_RELEASE_INVALID: diskKey.key"
  DK=${DK%x}
  DW=$(json_exact wrapped) || die 1 "JOIN_RELEASE_INVALID: diskKey.wrapped"
  DW=${DW%x}
  if ! one_line "$DK" '^[A-Za-z0-9_-]{43}$' || ! one_line "$DW" '^[A-Za-z0-9_-]{1,8192}$'; then
    die 1 "JOIN_RELEASE_INVALID: diskKey is not base64url (a 32-byte key)"
  fi
  b64url_decode_to "$DK" "$WORK/disk.key" || die 1 "JOIN_RELEASE_INVALID: diskKey.key"
  DK=""
  [ "$(wc -c < "$WORK/disk.key" | tr -d ' ')" = 32 ] || die 1 "JOIN_RELEASE_INVALID: diskKey.key is not 32 bytes"
  printf '%s' "$DW" > "$WORK/disk.wrapped"
fi
if [ -n "$DISK_KEY_ONLY" ]; then
  write_atomic "$WORK/disk.key" "$DISK_KEY_OUT" || die 1 "JOIN_WRITE_FAILED: cannot write $DISK_KEY_OUT"
  rm -f "$WORK/disk.key"
  write_atomic "$WORK/disk.wrapped" "$DISK_KEY_WRAPPED" || die 1 "JOIN_WRITE_FAILED: cannot write $DISK_KEY_WRAPPED"
  log "disk key for $NODE written to $DISK_KEY_OUT"
  exit 0
fi

json_str "$WORK/resp" kubeconfig > "$WORK/kubeconfig" || die 1 "JOIN_RELEASE_INVALID: no kubeconfig in the release"
TOKEN=$(json_exact bootstrapToken) || die 1 "JOIN_RELEASE_INVALID: no bootstrapToken"
TOKEN=${TOKEN%x}
one_line "$TOKEN" '^[a-z0-9]{6}\.[a-z0-9]{16}$' || die 1 "JOIN_RELEASE_INVALID: malformed bootstrap token"
grep -qF "$TOKEN" "$WORK/kubeconfig" || die 1 "JOIN_RELEASE_INVALID: the kubeconfig does not carry the token"

# Rendered in full before anything is written; the same bytes as deploy/node/client/bootstrap.ts.
if [ -n "$NODE_NAME_OUT" ]; then printf '%s\n' "$NODE" > "$WORK/node-name"; fi
if [ -n "$KUBELET_CONFIG_OUT" ]; then
  printf '%s\n' \
    "# Written by attest-join: a drop-in for the kubelet's --config-dir (Kubernetes >= 1.30)." \
    '# The kubelet rotates its client certificate and asks for its serving certificate with a CSR,' \
    "# which the attest-broker approver checks against the addresses this node's evidence proved." \
    'apiVersion: kubelet.config.k8s.io/v1beta1' \
    'kind: KubeletConfiguration' \
    'rotateCertificates: true' \
    'serverTLSBootstrap: true' > "$WORK/kubelet-config"
fi
if [ -n "$KUBEADM_CONFIG_OUT" ]; then
  API=$(json_exact apiServer) || die 1 "JOIN_RELEASE_INVALID: no apiServer"
  API=${API%x}
  one_line "$API" '^https://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$' \
    || die 1 "JOIN_RELEASE_INVALID: release apiServer cannot be written into a configuration file"
  # caCertHashes (optional): every element exactly "sha256:<64 hex>", at most 16.
  HASHES=$(tr -d '\n' < "$WORK/resp" | sed -n 's/.*"caCertHashes"[ ]*:[ ]*\[\([^]]*\)\].*/\1/p' | tr -d ' ')
  HASH_LIST=""
  if [ -n "$HASHES" ]; then
    if printf '%s\n' "$HASHES" | tr ',' '\n' | grep -Evq '^"sha256:[0-9a-f]{64}"$'; then
      die 1 "JOIN_RELEASE_INVALID: release caCertHashes cannot be written into a configuration file"
    fi
    HASH_LIST=$(printf '%s' "$HASHES" | tr -d '"' | tr ',' ' ')
    # shellcheck disable=SC2086 # split on purpose: the hashes are checked hex strings
    [ "$(printf '%s\n' $HASH_LIST | wc -l)" -le 16 ] || die 1 "JOIN_RELEASE_INVALID: too many caCertHashes"
  fi
  {
    printf '%s\n' \
      '# Written by attest-join: kubeadm join --config <this file>. It holds the bootstrap token:' \
      '# keep it 0600 and delete it after the join.' \
      '# Discovery is by file: the bootstrap kubeconfig carries the cluster CA, which attest-join' \
      "# received over the broker's pinned channel. Token discovery cannot work: the broker's" \
      '# tokens do not carry usage-bootstrap-signing (they cannot sign kube-public/cluster-info).'
    printf '# API server (from the release): %s\n' "$API"
    printf '%s\n' '# CA certificate hashes (from the release, for operators; file discovery does not use them):'
    if [ -n "$HASH_LIST" ]; then
      for h in $HASH_LIST; do printf '#   %s\n' "$h"; done
    else
      printf '%s\n' '#   (none: the API server certificate is publicly trusted)'
    fi
    printf '%s\n' 'apiVersion: kubeadm.k8s.io/v1beta4' 'kind: JoinConfiguration' 'discovery:' '  file:'
    printf '    kubeConfigPath: "%s"\n' "$OUT"
    printf '  tlsBootstrapToken: "%s"\n' "$TOKEN"
    printf '%s\n' 'nodeRegistration:'
    printf '  name: "%s"\n' "$NODE"
    if [ -n "$KUBELET_CONFIG_DIR" ]; then
      printf '%s\n' '  kubeletExtraArgs:' '  - name: "config-dir"'
      printf '    value: "%s"\n' "$KUBELET_CONFIG_DIR"
    fi
  } > "$WORK/kubeadm-config"
fi

if [ -n "$DISK_KEY_OUT" ]; then
  write_atomic "$WORK/disk.key" "$DISK_KEY_OUT" || die 1 "JOIN_WRITE_FAILED: cannot write $DISK_KEY_OUT"
  rm -f "$WORK/disk.key"
  write_atomic "$WORK/disk.wrapped" "$DISK_KEY_WRAPPED" || die 1 "JOIN_WRITE_FAILED: cannot write $DISK_KEY_WRAPPED"
fi
if [ -n "$NODE_NAME_OUT" ]; then write_atomic "$WORK/node-name" "$NODE_NAME_OUT" || die 1 "JOIN_WRITE_FAILED: cannot write $NODE_NAME_OUT"; fi
if [ -n "$KUBELET_CONFIG_OUT" ]; then write_atomic "$WORK/kubelet-config" "$KUBELET_CONFIG_OUT" || die 1 "JOIN_WRITE_FAILED: cannot write $KUBELET_CONFIG_OUT"; fi
if [ -n "$KUBEADM_CONFIG_OUT" ]; then write_atomic "$WORK/kubeadm-config" "$KUBEADM_CONFIG_OUT" || die 1 "JOIN_WRITE_FAILED: cannot write $KUBEADM_CONFIG_OUT"; fi
# The kubeconfig last: its existence is what tells systemd (and cloud-init) the join is done.
write_atomic "$WORK/kubeconfig" "$OUT" || die 1 "JOIN_WRITE_FAILED: cannot write $OUT"
log "joined as $NODE; bootstrap kubeconfig written to $OUT"
