#!/bin/sh
# attest-join.sh — POSIX shell join client for attest-broker (protocol v1).
#
# Needs only tpm2-tools, curl and openssl (plus awk, od, sed, dd from the base system). Evidence
# per platform (--platform, default auto: SMBIOS strings, as the TypeScript client decides):
#   generic  `tpm`          EK (+ certificate and chain from NV), fresh AK, quote, event log
#   azure    `az-snp-vtpm`  binding → HCL user data (NV 0x01400002), HCL report (NV 0x01400001),
#            `az-tdx-vtpm`  quote by the vTPM AK 0x81000003, VCEK from IMDS THIM (SEV-SNP) or
#                           the TD quote from IMDS /acc/tdquote (TDX, when the HCL report says so)
#   gcp      `gotpm`        AK made from GCE's NV template, its certificate from NV, a quote per
#                           PCR bank, event log: the attest.Attestation protobuf; on a SEV-SNP
#                           Confidential VM also the report (sev_snp_attestation, REPORT_DATA =
#                           binding ‖ zeros) and the host's certificate table, read through
#                           configfs-tsm (Linux >= 6.7, configfs mounted at /sys/kernel/config)
#   aws      `nitrotpm`     `nitro-tpm-attest --nonce FILE` (aws-nitro-tpm-tools) when installed,
#                           else the NitroTPM's NSM vendor command through tpm2_send
# The same bytes as the TypeScript client's gatherers (deploy/node/client/evidence.node.ts).
#
# Sealed release on every platform, so no cluster has to allow unsealed release for it:
# - `tpm` evidence: binding = nonce (protocol §2); the broker seals the release to this TPM
#   (`release.tpmSeal`: TPM2_MakeCredential to the EK and the AK that quoted), opened here with
#   tpm2_activatecredential and the openssl command line. Without release.tpmSeal, an unsealed
#   release (where the cluster's policy allows it) is accepted with a warning.
# - cloud evidence (no EK): a fresh RSA-2048 key per attempt (openssl genpkey), bound into the
#   evidence (binding = SHA-256(nonce ‖ RFC 7638 thumbprint)); the broker seals to it with
#   RSA-OAEP-256 and A128CBC-HS256 (`sealEnc`), opened with openssl pkeyutl and openssl enc +
#   HMAC; an unsealed answer is refused. --key-in-tpm (ATTEST_KEY_IN_TPM=1): that key, and AWS's
#   KMS Recipient key, are made in the TPM (RSA-2048, decrypt, OAEP-SHA-256); tpm2_rsadecrypt unwraps.
#
# Usage:
#   attest-join.sh --broker URL --ca-pin sha256:HEX --cluster NAME [--platform auto|generic|azure|gcp|aws] [--out FILE] [--deadline SECONDS]
#     [--kubelet-config-out FILE.conf] [--kubeadm-config-out FILE] [--node-name-out FILE]
#     [--disk-key-out FILE [--disk-key-wrapped FILE] [--disk-key-only]] [--key-in-tpm]
#     [--gpu-evidence-cmd /ABS/PATH]
#   attest-join.sh --gather-only --binding HEX64 [--platform …]: print the attest request's
#     {"provider","format","evidence"} for that binding and stop (no broker; for diagnosis)
# or the same through ATTEST_BROKER, ATTEST_CA_PIN, ATTEST_CLUSTER, ATTEST_OUT, ATTEST_DEADLINE,
# ATTEST_KUBELET_CONFIG_OUT, ATTEST_KUBEADM_CONFIG_OUT, ATTEST_NODE_NAME_OUT, ATTEST_PLATFORM;
# ATTEST_IMDS (Azure IMDS base, default http://169.254.169.254), ATTEST_NITRO_TPM_ATTEST (the
# tool's path; absent → the vendor command, its NV buffer ATTEST_NITRO_NV_SIZE bytes, default
# 8192) and ATTEST_DMI_DIR (default /sys/class/dmi/id) point the gatherers elsewhere.
#
# GCP Confidential VM: ATTEST_TSM_REPORT_DIR (default /sys/kernel/config/tsm/report) is the
# configfs-tsm report root, ATTEST_TEE_DEV_DIR (default /dev) where sev-guest / tdx_guest appear,
# ATTEST_CPUINFO (default /proc/cpuinfo) the CPU family/model for the report's product hint.
# No report entry can be made and no guest device: a Shielded VM, vTPM part only (as before).
# A guest device but no configfs-tsm (kernel < 6.7, or configfs not mounted; the device's ioctl
# is out of reach from sh), or an entry that fails to give a report: exit 1,
# JOIN_TEE_REPORT_UNAVAILABLE, never a silent join without the report. A TDX guest sends the vTPM
# part with a warning (the broker's gcp verifier cannot check TD quotes in gotpm evidence; its
# policy decides). ATTEST_GCP_TEE=none sends the vTPM part only, knowingly.
#
# GPUs (docs/nvidia.md, "The node side"): --gpu-evidence-cmd PATH (ATTEST_GPU_EVIDENCE_CMD) runs
# that executable (an absolute path; coreutils `timeout` bounds it by the deadline) for every attest
# request with the binding as 64 lower-case hex digits, as its argument and in ATTEST_GPU_NONCE;
# its stdout, the nvtrust evidence JSON array (ASCII, <= 4 MiB, 1..64 objects with string
# "evidence" and "certificate"), is attached as devices:[{"kind":"nvidia-gpu","evidence":...}].
# Its stderr is passed through. Anything else: exit 1, JOIN_GPU_EVIDENCE_FAILED, nothing sent.
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
GATHER_ONLY=
GATHER_BINDING=
KEY_IN_TPM=${ATTEST_KEY_IN_TPM:-}
GPU_CMD=${ATTEST_GPU_EVIDENCE_CMD:-}
[ "$KEY_IN_TPM" = 0 ] && KEY_IN_TPM=
IMDS=${ATTEST_IMDS:-http://169.254.169.254}
NITRO_TPM_ATTEST=${ATTEST_NITRO_TPM_ATTEST:-nitro-tpm-attest}
DMI_DIR=${ATTEST_DMI_DIR:-/sys/class/dmi/id}
TSM_REPORT_DIR=${ATTEST_TSM_REPORT_DIR:-/sys/kernel/config/tsm/report}
TEE_DEV_DIR=${ATTEST_TEE_DEV_DIR:-/dev}
CPUINFO=${ATTEST_CPUINFO:-/proc/cpuinfo}
GCP_TEE=${ATTEST_GCP_TEE:-auto}
TSM_ENTRY=
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
    --gather-only) GATHER_ONLY=1; shift ;;
    --key-in-tpm) KEY_IN_TPM=1; shift ;;
    --gpu-evidence-cmd) GPU_CMD=${2:-}; shift 2 ;;
    --binding) GATHER_BINDING=${2:-}; shift 2 ;;
    -h|--help) sed -n '2,71p' "$0"; exit 0 ;;
    *) die 2 "unknown argument: $1" ;;
  esac
done

case $PLATFORM in
  auto|generic|azure|gcp|aws) ;;
  *) die 2 "--platform must be auto, generic, azure, gcp or aws" ;;
esac
case $IMDS in http://*|https://*) IMDS=${IMDS%/} ;; *) die 2 "ATTEST_IMDS must be an http(s):// URL" ;; esac
case $GCP_TEE in auto|none) ;; *) die 2 "ATTEST_GCP_TEE must be auto or none" ;; esac
if [ -n "$GATHER_ONLY" ]; then
  printf '%s' "$GATHER_BINDING" | grep -Eq '^[0-9a-f]{64}$' || die 2 "--gather-only needs --binding <64 lower-case hex digits>"
else
  [ -z "$GATHER_BINDING" ] || die 2 "--binding goes with --gather-only (a join takes the binding from the broker's challenge)"
  if [ -z "$BROKER" ] || [ -z "$CA_PIN" ] || [ -z "$CLUSTER" ]; then
    die 2 "--broker, --ca-pin and --cluster are required"
  fi
fi
if [ -z "$GATHER_ONLY" ]; then
case $BROKER in https://*) ;; *) die 2 "--broker must be an https:// URL" ;; esac
PIN_HEX=$(printf '%s' "$CA_PIN" | sed -n 's/^sha256:\([0-9a-fA-F]\{64\}\)$/\1/p' | tr 'A-F' 'a-f')
[ -n "$PIN_HEX" ] || die 2 "--ca-pin must be sha256:<64 hex digits>"
printf '%s' "$CLUSTER" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' || die 2 "--cluster must be 1-128 of [A-Za-z0-9._-]"
fi
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
  [ ${#WRAPPED_IN} -ge 1 ] && [ ${#WRAPPED_IN} -le 8192 ] && printf '%s' "$WRAPPED_IN" | grep -Eq '^[A-Za-z0-9_-]+$' || WRAPPED_IN=""
fi
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
for t in tpm2_createek tpm2_createak tpm2_quote tpm2_nvreadpublic curl openssl awk od dd; do
  command -v "$t" >/dev/null 2>&1 || die 1 "$t is required"
done
# The GPU gatherer, before anything is sent: a node configured for GPUs never joins without them.
if [ -n "$GPU_CMD" ]; then
  case $GPU_CMD in /*) ;; *) die 2 "--gpu-evidence-cmd must be an absolute path (it is not looked up on PATH): $GPU_CMD" ;; esac
  if [ ! -f "$GPU_CMD" ] || [ ! -x "$GPU_CMD" ]; then
    die 1 "JOIN_GPU_EVIDENCE_FAILED: --gpu-evidence-cmd $GPU_CMD is not an executable file: install the GPU evidence gatherer there (docs/nvidia.md, \"The node side\"), or drop the option on nodes without GPUs"
  fi
  command -v timeout >/dev/null 2>&1 || die 1 "JOIN_GPU_EVIDENCE_FAILED: timeout (coreutils) is required with --gpu-evidence-cmd"
fi
# The platform: SMBIOS (DMI) strings only, as the TypeScript client decides (never the network:
# probing a link-local metadata address on the wrong cloud or on bare metal would hang or reach
# something else).
dmi() { head -n1 "$DMI_DIR/$1" 2>/dev/null || :; }
if [ "$PLATFORM" = auto ]; then
  VENDOR="$(dmi sys_vendor) $(dmi board_vendor) $(dmi bios_vendor)"
  PRODUCT=$(dmi product_name)
  if printf '%s' "$VENDOR" | grep -qi 'Microsoft Corporation' && printf '%s' "$PRODUCT" | grep -qi 'Virtual Machine'; then PLATFORM=azure
  elif printf '%s' "$VENDOR" | grep -qi 'Google'; then PLATFORM=gcp
  elif printf '%s' "$VENDOR" | grep -qi 'Amazon EC2'; then PLATFORM=aws
  else PLATFORM=generic
  fi
  log "platform: $PLATFORM (from $DMI_DIR)"
fi
case $PLATFORM in generic) PROVIDER=tpm ;; *) PROVIDER=$PLATFORM ;; esac

START=$(date +%s)
END=$((START + DEADLINE))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/attest-join.XXXXXX")
NITRO_NV=""
# shellcheck disable=SC2016 # expanded when the trap runs
trap 'nitro_undefine 2>/dev/null || :; tpm2_flushcontext -t >/dev/null 2>&1 || :; tpm2_flushcontext -s >/dev/null 2>&1 || :; if [ -n "$TSM_ENTRY" ]; then rmdir "$TSM_ENTRY" 2>/dev/null || :; fi; rm -rf "$WORK"' EXIT INT TERM

remaining() { echo $((END - $(date +%s))); }

# --- encodings -------------------------------------------------------------------------------
b64url_file() { openssl base64 -A -in "$1" | tr '+/' '-_' | tr -d '='; }
b64url_decode_to() { # $1 text, $2 output file
  s=$(printf '%s' "$1" | tr '_-' '/+')
  case $(( ${#s} % 4 )) in 2) s="$s==" ;; 3) s="$s=" ;; 1) return 1 ;; esac
  printf '%s' "$s" | openssl base64 -d -A > "$2"
}
hex_file() { od -An -v -tx1 "$1" | tr -d ' \n'; }
# hex_to_file HEX FILE: the bytes a lower-case hex string spells (a few KiB at most): one
# printf whose format is the octal escapes awk writes for each byte.
hex_to_file() {
  # shellcheck disable=SC2059 # the format is octal escapes built from checked hex
  printf "$(printf '%s' "$1" | awk '{ for (i = 1; i < length($0); i += 2) printf "\\%03o", (index("0123456789abcdef", substr($0, i, 1)) - 1) * 16 + index("0123456789abcdef", substr($0, i + 1, 1)) - 1 }')" > "$2"
}

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

# --- evidence: one gatherer per platform (the TypeScript client's evidence.node.ts) ----------
# Each writes the evidence object to $WORK/evidence.json and sets FORMAT; PROVIDER is set below.
# The binding ($BINDING, 64 hex digits) goes where the format carries the challenge.

# nv_defined INDEX (0x + 8 hex digits): the TPM lists it (tpm2_nvreadpublic of an undefined
# index crashes some tpm2-tools 5.x builds, so it is asked only about listed ones).
nv_defined() {
  want=$(printf '%s' "$1" | tr 'A-F' 'a-f' | sed 's/^0x0*//')
  tpm2_getcap handles-nv-index 2>/dev/null | tr 'A-F' 'a-f' | sed -n 's/^- *0x0*\([0-9a-f]*\)$/\1/p' | grep -qx "$want"
}
# nv_read INDEX FILE: a whole NV index (owner auth first, then the index's own), or status 1.
nv_read() {
  nv_defined "$1" || return 1
  sz=$(tpm2_nvreadpublic "$1" 2>/dev/null | sed -n 's/^ *size: *\([0-9]*\)$/\1/p' | head -n1)
  [ -n "$sz" ] && [ "$sz" -gt 0 ] || return 1
  tpm2_nvread "$1" -C o -s "$sz" -o "$2" >/dev/null 2>&1 || tpm2_nvread "$1" -C "$1" -s "$sz" -o "$2" >/dev/null 2>&1
}
# le32 FILE OFFSET: the unsigned 32-bit little-endian integer at OFFSET.
le32() { od -An -v -j "$2" -N4 -tu1 "$1" | awk '{ print $1 + $2 * 256 + $3 * 65536 + $4 * 16777216 }'; }
# slice FILE OFFSET COUNT OUT: COUNT bytes from OFFSET.
slice() { dd if="$1" of="$4" bs=1 skip="$2" count="$3" 2>/dev/null; }
# json_escape_file FILE: the file's text as a JSON string body (\ " CR LF TAB escaped).
json_escape_file() { awk 'BEGIN { RS = "\001"; ORS = "" } { gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); gsub(/\r/, "\\r"); gsub(/\t/, "\\t"); gsub(/\n/, "\\n"); print }' "$1"; }
# pem_first_der PEMFILE DERFILE: the first certificate's base64 body, decoded (not re-encoded).
pem_first_der() {
  awk '/-----END CERTIFICATE-----/ { exit } f { print } /-----BEGIN CERTIFICATE-----/ { f = 1 }' "$1" | tr -d ' \r\t' > "$WORK/pem.b64"
  [ -s "$WORK/pem.b64" ] && openssl base64 -d -in "$WORK/pem.b64" -out "$2" 2>/dev/null && [ -s "$2" ]
}
event_log_file() { # copies the event log to $WORK/evlog if there is one (status 1 if not)
  [ -n "$EVENT_LOG" ] && [ -r "$EVENT_LOG" ] || return 1
  cat "$EVENT_LOG" > "$WORK/evlog" || return 1
  n=$(wc -c < "$WORK/evlog" | tr -d ' ')
  [ "$n" -le 524288 ] || die 1 "JOIN_EVIDENCE_UNAVAILABLE: event log $EVENT_LOG is $n bytes, over 524288"
  [ "$n" -gt 0 ]
}
quote_all() { # quote_all AKCTX BANK SIGFORMAT: q.msg, q.sig, q.pcrs over PCRs 0-23 of BANK
  tpm2_quote -c "$1" -l "$2:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23" -q "$BINDING" -g sha256 \
    -m "$WORK/q.msg" -s "$WORK/q.sig" -o "$WORK/q.pcrs" -F values -f "$3" >/dev/null || die 1 "JOIN_TPM_TOOL_FAILED: tpm2_quote ($2)"
  tpm2_flushcontext -t >/dev/null 2>&1 || :; tpm2_flushcontext -s >/dev/null 2>&1 || :
}

gather_tpm() { # $1 = extra evidence members (the activation answer)
  quote_all "$WORK/ak.ctx" sha256 tss
  PCRS=$(hex_file "$WORK/q.pcrs" | awk '{ for (i = 0; i < 24; i++) printf "%s\"%d\":\"%s\"", (i ? "," : ""), i, substr($0, i * 64 + 1, 64) }')
  FORMAT=tpm
  {
    printf '{"ak_public":"%s",' "$(b64url_file "$WORK/ak.pub")"
    printf '"quote":{"message":"%s","signature":"%s"},' "$(b64url_file "$WORK/q.msg")" "$(b64url_file "$WORK/q.sig")"
    printf '"pcrs":{"sha256":{%s}},"ek_public":"%s"' "$PCRS" "$(b64url_file "$WORK/ek.pub")"
    if event_log_file; then printf ',"event_log":"%s"' "$(b64url_file "$WORK/evlog")"; fi
    if nv_read 0x01c00002 "$WORK/ekcert.nv"; then
      # Trim NV padding to the DER length.
      openssl x509 -inform der -in "$WORK/ekcert.nv" -outform der -out "$WORK/ekcert.der" 2>/dev/null \
        && printf ',"ek_certificate":"%s"' "$(b64url_file "$WORK/ekcert.der")"
      # The manufacturer's chain, if the TPM has one (TCG NV range 0x01c00100-0x01c001ff; the
      # first certificate of each index): intermediates only, the broker pins the roots.
      sep=""; n=0
      for idx in $(tpm2_getcap handles-nv-index 2>/dev/null | sed -n 's/^- *0x\(1[Cc]001[0-9A-Fa-f][0-9A-Fa-f]\)$/0x0\1/p'); do
        [ $n -lt 8 ] || break
        if ! nv_read "$idx" "$WORK/chain.nv" || ! openssl x509 -inform der -in "$WORK/chain.nv" -outform der -out "$WORK/chain.der" 2>/dev/null; then
          continue
        fi
        if [ $n -eq 0 ]; then printf ',"ek_intermediates":['; fi
        printf '%s"%s"' "$sep" "$(b64url_file "$WORK/chain.der")"; sep=","; n=$((n + 1))
      done
      if [ $n -gt 0 ]; then printf ']'; fi
    else
      log "no EK certificate at NV 0x01c00002; the broker must know this EK another way"
    fi
    printf '%s}' "$1"
  } > "$WORK/evidence.json"
}

# imds GET|POST PATH OUT [BODY]: Azure IMDS, never through a proxy, 10 s, HTTP errors fail.
imds() {
  if [ "$1" = POST ]; then
    curl -sS --fail --noproxy '*' --max-time 10 --max-filesize 65536 -H 'content-type: application/json' --data-binary "$4" -o "$3" "$IMDS$2"
  else
    curl -sS --fail --noproxy '*' --max-time 10 --max-filesize 65536 -H 'Metadata: true' -o "$3" "$IMDS$2"
  fi
}

gather_azure() {
  # Refresh the HCL report with the binding as user data (64 bytes to NV 0x01400002; the
  # paravisor then writes a new report to 0x01400001). Where it cannot, the quote still binds.
  hex_to_file "${BINDING}0000000000000000000000000000000000000000000000000000000000000000" "$WORK/hcl-ud.bin"
  if ! { nv_defined 0x01400002 || tpm2_nvdefine 0x01400002 -C o -s 64 -a 'ownerread|ownerwrite|authread|authwrite' >/dev/null 2>&1; } \
    || ! tpm2_nvwrite 0x01400002 -C o -i "$WORK/hcl-ud.bin" >/dev/null 2>&1; then
    log "could not write the binding into the HCL user data; the quote still carries it"
  fi
  nv_read 0x01400001 "$WORK/hcl.bin" || die 1 "JOIN_EVIDENCE_UNAVAILABLE: no HCL report at NV 0x01400001: not an Azure confidential VM?"
  n=$(wc -c < "$WORK/hcl.bin" | tr -d ' ')
  [ "$n" -ge 1228 ] || die 1 "JOIN_EVIDENCE_UNAVAILABLE: the HCL report is $n bytes: too short"
  # IGVM report_type (offset 1224, u32 LE; providers/azure/hcl.ts): 2 SEV-SNP, 4 TDX.
  rtype=$(le32 "$WORK/hcl.bin" 1224)
  case $rtype in 2) FORMAT=az-snp-vtpm ;; 4) FORMAT=az-tdx-vtpm ;; *) die 1 "JOIN_EVIDENCE_UNAVAILABLE: the HCL report's type $rtype is neither SEV-SNP (2) nor TDX (4)" ;; esac
  # The vTPM's AK (HCLAkPub, persistent 0x81000003), bare signature as the format has it.
  quote_all 0x81000003 sha256 plain
  PCRS=$(hex_file "$WORK/q.pcrs" | awk '{ for (i = 0; i < 24; i++) printf "%s\"%s\"", (i ? "," : ""), substr($0, i * 64 + 1, 64) }')
  if [ "$FORMAT" = az-tdx-vtpm ]; then
    # The TDREPORT (HCL hardware-report slot, offset 32, 1024 bytes) → the host's quoting
    # enclave through IMDS → the TD quote.
    slice "$WORK/hcl.bin" 32 1024 "$WORK/tdreport.bin"
    imds POST /acc/tdquote "$WORK/tdquote.json" "{\"report\":\"$(b64url_file "$WORK/tdreport.bin")\"}" \
      || die 1 "JOIN_EVIDENCE_UNAVAILABLE: Azure IMDS TD quote service at $IMDS failed"
    TDQ=$(json_str "$WORK/tdquote.json" quote) || die 1 "JOIN_EVIDENCE_UNAVAILABLE: Azure IMDS TD quote answer has no quote"
    printf '%s' "$TDQ" | grep -Eq '^[A-Za-z0-9_-]+={0,2}$' || die 1 "JOIN_EVIDENCE_UNAVAILABLE: Azure IMDS TD quote answer has no base64url quote"
    b64url_decode_to "${TDQ%%=*}" "$WORK/tdquote.bin" || die 1 "JOIN_EVIDENCE_UNAVAILABLE: Azure IMDS TD quote is not base64url"
  else
    # The VCEK (and its ASK) for this chip and TCB, from IMDS THIM.
    imds GET /metadata/THIM/amd/certification "$WORK/thim.json" || die 1 "JOIN_EVIDENCE_UNAVAILABLE: Azure IMDS THIM at $IMDS failed"
    json_str "$WORK/thim.json" vcekCert > "$WORK/vcek.pem" || die 1 "JOIN_EVIDENCE_UNAVAILABLE: Azure IMDS THIM answer has no vcekCert"
    pem_first_der "$WORK/vcek.pem" "$WORK/vcek.der" || die 1 "JOIN_EVIDENCE_UNAVAILABLE: not a PEM certificate"
    # The chain is passed on only as plain PEM text (the TypeScript client's rule).
    if json_str "$WORK/thim.json" certificateChain > "$WORK/vcek-chain.pem" 2>/dev/null \
      && grep -q -e '-----BEGIN CERTIFICATE-----' "$WORK/vcek-chain.pem" \
      && ! LC_ALL=C tr -d 'A-Za-z0-9+/= \r\n-' < "$WORK/vcek-chain.pem" | LC_ALL=C grep -q .; then
      CHAIN=1
    else
      CHAIN=
    fi
  fi
  {
    printf '{"version":1,"tpm_quote":{"signature":"%s","message":"%s","pcrs":[%s]},' "$(hex_file "$WORK/q.sig")" "$(hex_file "$WORK/q.msg")" "$PCRS"
    printf '"hcl_report":"%s"' "$(b64url_file "$WORK/hcl.bin")"
    if [ "$FORMAT" = az-tdx-vtpm ]; then
      printf ',"td_quote":"%s"' "$(b64url_file "$WORK/tdquote.bin")"
    else
      printf ',"vcek":"%s"' "$(b64url_file "$WORK/vcek.der")"
      if [ -n "$CHAIN" ]; then printf ',"vcek_chain":"%s"' "$(json_escape_file "$WORK/vcek-chain.pem")"; fi
    fi
    printf '}'
  } > "$WORK/evidence.json"
}

# --- gcp: protobuf (proto3 encoding: key varint, then varint or length-delimited value) -------
varint_hex() { awk -v n="$1" 'BEGIN { do { b = n % 128; n = int(n / 128); if (n > 0) b += 128; printf "%02x", b } while (n > 0) }'; }
# pb_field FIELD FILE OUT: appends FIELD (wire type 2) holding FILE's bytes to OUT.
pb_field() {
  hex_to_file "$(varint_hex $(($1 * 8 + 2)))$(varint_hex "$(wc -c < "$2" | tr -d ' ')")" "$WORK/pb.hdr"
  cat "$WORK/pb.hdr" "$2" >> "$3"
}

# gce_ak TEMPLATE: makes the primary key GCE's TPMT_PUBLIC template describes in the endorsement
# hierarchy (gce-ak.ctx) and its TPMT_PUBLIC (gce-ak.tpmt). The template is translated to
# tpm2_createprimary options; only GCE's shapes: RSA-2048 RSASSA/RSAPSS or ECC P-256/P-384 ECDSA
# signing keys with a null symmetric. The key made must carry the template's bytes up to the
# unique field, or the options did not express it and nothing is sent.
gce_ak() {
  # shellcheck disable=SC2046 # the fields are hex tokens from the awk below
  set -- $(hex_file "$1" | awk '
    function u(n,   v) { v = substr(h, p, 2 * n); p += 2 * n; if (length(v) != 2 * n) bad = 1; return v }
    function num(x,   i, v) { v = 0; for (i = 1; i <= length(x); i++) v = v * 16 + index("0123456789abcdef", substr(x, i, 1)) - 1; return v }
    function tpm2b(max,   n) { n = num(u(2)); if (n > max) bad = 1; return u(n) }
    function le16(n) { return sprintf("%02x%02x", n % 256, int(n / 256)) }
    function tss(x, size,   s) { s = le16(length(x) / 2) x; while (length(s) < 2 * (2 + size)) s = s "00"; return s }
    function hn(a) { return a == "0004" ? "sha1" : a == "000c" ? "sha384" : a == "000b" ? "sha256" : "" }
    {
      h = $0; p = 1; bad = 0
      type = u(2); nameAlg = u(2); attrs = u(4); policy = tpm2b(64); sym = u(2); scheme = u(2)
      shash = (scheme == "0010") ? "" : u(2)
      sh = hn(shash); if (sh == "") sh = "sha256"
      if (sym != "0010") bad = 1
      if (type == "0001") {
        bits = u(2); u(4); head = (p - 1) / 2; n = tpm2b(512)
        uniq = length(n) ? tss(n, 512) : ""
        sch = scheme == "0014" ? "rsassa" : scheme == "0016" ? "rsapss" : ""
        if (sch == "" || bits != "0800") bad = 1
        alg = "rsa2048:" sch "-" sh ":null"
      } else if (type == "0023") {
        curve = u(2); c = curve == "0003" ? "ecc256" : curve == "0004" ? "ecc384" : ""
        kdf = u(2); if (kdf != "0010") u(2)
        head = (p - 1) / 2; x = tpm2b(66); y = tpm2b(66)
        uniq = (length(x) || length(y)) ? tss(x, 128) tss(y, 128) : ""
        if (c == "" || scheme != "0018") bad = 1
        alg = c ":ecdsa-" sh ":null"
      } else bad = 1
      if (p != length(h) + 1) bad = 1
      ng = hn(nameAlg); if (ng == "") ng = "sha256"
      if (bad) { print "bad"; exit }
      print "ok", alg, ng, "0x" attrs, head, (length(policy) ? policy : "-"), (length(uniq) ? uniq : "-")
    }')
  [ "${1:-}" = ok ] || die 1 "JOIN_EVIDENCE_UNAVAILABLE: unsupported or malformed GCE AK template in NV"
  alg=$2 nalg=$3 attrs=$4 hlen=$5 policy=$6 uniq=$7
  set -- -C e -G "$alg" -g "$nalg" -a "$attrs" -c "$WORK/gce-ak.ctx"
  if [ "$policy" != - ]; then hex_to_file "$policy" "$WORK/gce-ak.policy"; set -- "$@" -L "$WORK/gce-ak.policy"; fi
  if [ "$uniq" != - ]; then hex_to_file "$uniq" "$WORK/gce-ak.unique"; set -- "$@" -u "$WORK/gce-ak.unique"; fi
  tpm2_createprimary "$@" >/dev/null || die 1 "JOIN_TPM_TOOL_FAILED: tpm2_createprimary (GCE AK)"
  tpm2_flushcontext -t >/dev/null 2>&1 || :; tpm2_flushcontext -s >/dev/null 2>&1 || :
  tpm2_readpublic -c "$WORK/gce-ak.ctx" -o "$WORK/gce-ak.pub" -f tss >/dev/null || die 1 "JOIN_TPM_TOOL_FAILED: tpm2_readpublic (GCE AK)"
  tpm2_flushcontext -t >/dev/null 2>&1 || :
  tail -c +3 "$WORK/gce-ak.pub" > "$WORK/gce-ak.tpmt"
  t=$(hex_file "$WORK/gce-ak.tpmt" | cut -c "1-$((hlen * 2))")
  if [ ${#t} -ne $((hlen * 2)) ] || [ "$t" != "$(hex_file "$TEMPLATE" | cut -c "1-$((hlen * 2))")" ]; then
    die 1 "JOIN_EVIDENCE_UNAVAILABLE: the AK made from the NV template does not match the template"
  fi
}

# --- gcp Confidential VM: the SEV-SNP report through configfs-tsm (Linux >= 6.7) ---------------
# The TypeScript client's tsm.node.ts, step for step: an entry per challenge under
# $TSM_REPORT_DIR (named from the binding; one that already exists is used), REPORT_DATA =
# binding ‖ zeros written to inblob (what go-tpm-tools asks for and the broker's gcp verifier
# checks), the report from outblob, the host's certificate table from auxblob, `generation`
# unchanged across the reads, the entry removed. No entry possible: with /dev/sev-guest or
# /dev/tdx_guest present that is a Confidential VM whose report this client cannot read
# (kernel < 6.7 or configfs not mounted; the device's ioctl is out of reach from sh) and it
# fails; without, a Shielded VM. Sets SNP_PB to the sevsnp.Attestation file, or leaves it empty.
TEE_FIX='set ATTEST_GCP_TEE=none to join knowingly with the vTPM attestation only (the broker then sees a Shielded VM)'
tee_fail() { die 1 "JOIN_TEE_REPORT_UNAVAILABLE: $*; $TEE_FIX"; }
# snp_report_hex REPORT: sevsnp.Report (go-sev-guest proto, fields ascending; the broker's
# providers/gcp/sevsnp.ts) as hex, from the 1184-byte ATTESTATION_REPORT; "reserved" when bytes
# the proto cannot carry are set. Integers become varints through bit strings (awk's numbers
# cannot hold 64 bits); zero integers are omitted, byte strings always written.
snp_report_hex() {
  hex_file "$1" | awk '
    function vhex(n,   s, b) { s = ""; do { b = n % 128; n = int(n / 128); if (n > 0) b += 128; s = s sprintf("%02x", b) } while (n > 0); return s }
    function byte(o) { return (index(D, substr(h, 2 * o + 1, 1)) - 1) * 16 + index(D, substr(h, 2 * o + 2, 1)) - 1 }
    function le(o, n,   i, k, v, bits, out, chunk) {
      bits = ""
      for (i = n - 1; i >= 0; i--) { v = byte(o + i); for (k = 7; k >= 0; k--) bits = bits (int(v / 2 ^ k) % 2) }
      sub(/^0+/, "", bits); out = ""
      while (length(bits) > 0) {
        if (length(bits) > 7) { chunk = substr(bits, length(bits) - 6); bits = substr(bits, 1, length(bits) - 7) } else { chunk = bits; bits = "" }
        v = 0; for (k = 1; k <= length(chunk); k++) v = v * 2 + substr(chunk, k, 1)
        if (length(bits) > 0) v += 128
        out = out sprintf("%02x", v)
      }
      return out
    }
    function i(f, o, n,   v) { v = le(o, n); if (v != "") printf "%s%s", vhex(f * 8), v }
    function b(f, o, n) { printf "%s%s%s", vhex(f * 8 + 2), vhex(n), substr(h, 2 * o + 1, 2 * n) }
    function zero(o, n) { return substr(h, 2 * o + 1, 2 * n) ~ /^0*$/ }
    {
      D = "0123456789abcdef"; h = $0
      if (length(h) != 2368 || !zero(76, 4) || !zero(395, 21) || !zero(491, 1) || !zero(495, 1) || !zero(520, 152)) { print "reserved"; exit }
      version = byte(0) + byte(1) * 256 + byte(2) * 65536 + byte(3) * 16777216
      eax = 0
      if (version >= 3) {
        fam = byte(392); model = byte(393); step = byte(394)
        if (step > 15) { print "reserved"; exit }
        if (fam >= 15) { ext = fam - 15; base = 15 } else { ext = 0; base = fam }
        eax = ext * 1048576 + int(model / 16) * 65536 + base * 256 + (model % 16) * 16 + step
      } else if (!zero(392, 3)) { print "reserved"; exit }
      i(1, 0, 4); i(2, 4, 4); i(3, 8, 8); b(4, 16, 16); b(5, 32, 16); i(6, 48, 4); i(7, 52, 4); i(8, 56, 8)
      i(9, 64, 8); i(10, 72, 4); b(11, 80, 64); b(12, 144, 48); b(13, 192, 32); b(14, 224, 48); b(15, 272, 48)
      b(16, 320, 32); b(17, 352, 32); i(18, 384, 8); b(19, 416, 64); i(20, 480, 8); i(21, 488, 1); i(22, 489, 1)
      i(23, 490, 1); i(24, 492, 1); i(25, 493, 1); i(26, 494, 1); i(27, 496, 8); b(28, 672, 512)
      if (eax > 0) printf "%s%s", vhex(29 * 8), vhex(eax)
      i(30, 504, 8); i(31, 512, 8)
      print ""
    }'
}
gcp_tee() {
  SNP_PB=
  if [ "$GCP_TEE" = none ]; then log "ATTEST_GCP_TEE=none: sending the vTPM attestation only, without any TEE report"; return 0; fi
  entry="$TSM_REPORT_DIR/attest-join-$(printf '%s' "$BINDING" | cut -c 1-16)"
  if ! mkdir "$entry" 2>"$WORK/mkdir.err" && [ ! -d "$entry" ]; then
    for d in sev-guest tdx_guest; do
      if [ -e "$TEE_DEV_DIR/$d" ]; then
        tee_fail "$TEE_DEV_DIR/$d exists (a Confidential VM) but no configfs-tsm report entry can be made under $TSM_REPORT_DIR ($(head -c 200 "$WORK/mkdir.err" | tr '\n' ' ')): the report is read through configfs-tsm, which needs Linux >= 6.7 with configfs mounted (mount -t configfs none /sys/kernel/config)"
      fi
    done
    log "no configfs-tsm report entry under $TSM_REPORT_DIR and no TEE guest device: a Shielded VM, sending the vTPM attestation only"
    return 0
  fi
  TSM_ENTRY=$entry
  provider=$(head -n1 "$entry/provider" 2>/dev/null) || tee_fail "cannot read the TSM provider $entry/provider"
  case $provider in
    sev_guest) ;;
    tdx_guest)
      # Nothing on the broker can check a TD quote in gotpm evidence (TEE_REPORT_UNSUPPORTED), so
      # sending one would only get the join refused: the vTPM part goes alone, and the broker's
      # policy decides whether a node without a verified TEE may join.
      rmdir "$entry" 2>/dev/null || :
      TSM_ENTRY=
      log "warning: an Intel TDX Confidential VM: the broker's gcp verifier cannot check a TD quote in gotpm evidence yet, so the vTPM attestation goes alone (the broker's policy decides)"
      return 0 ;;
    *) tee_fail "unknown TSM provider '$provider' in $entry" ;;
  esac
  [ ${#BINDING} -le 128 ] || tee_fail "the binding is longer than REPORT_DATA (64 bytes)"
  hex_to_file "$(printf '%s' "$BINDING" | awk '{ s = $0; while (length(s) < 128) s = s "0"; print s }')" "$WORK/inblob"
  cat "$WORK/inblob" 2>/dev/null > "$entry/inblob" || tee_fail "cannot write $entry/inblob"
  gen1=$(cat "$entry/generation" 2>/dev/null) || tee_fail "cannot read $entry/generation"
  cat "$entry/outblob" 2>/dev/null > "$WORK/report.bin" || tee_fail "cannot read the TEE report $entry/outblob"
  n=$(wc -c < "$WORK/report.bin" | tr -d ' ')
  [ "$n" -eq 1184 ] || tee_fail "the SEV-SNP report $entry/outblob is $n bytes, not 1184"
  : > "$WORK/aux.bin"
  if [ -e "$entry/auxblob" ]; then cat "$entry/auxblob" 2>/dev/null > "$WORK/aux.bin" || tee_fail "cannot read the certificate table $entry/auxblob"; fi
  gen2=$(cat "$entry/generation" 2>/dev/null) || tee_fail "cannot read $entry/generation"
  [ "$gen1" = "$gen2" ] || tee_fail "$entry was written by someone else while the report was read (generation $gen1 -> $gen2); try again"
  rmdir "$entry" 2>/dev/null || log "could not remove $entry"
  TSM_ENTRY=
  rhex=$(snp_report_hex "$WORK/report.bin")
  case $rhex in reserved|'') tee_fail "the SEV-SNP report cannot be carried in sevsnp.Report (reserved bytes set, or CPUID stepping over 15)" ;; esac
  hex_to_file "$rhex" "$WORK/snp-report.pb"
  # The certificate table: GUID (16) | offset u32 LE | length u32 LE entries, an all-zero entry
  # last; VCEK, ASK, ARK, VLEK kept (sevsnp.CertificateChain 1, 2, 3, 6), other GUIDs skipped.
  n=$(wc -c < "$WORK/aux.bin" | tr -d ' ')
  [ "$n" -le 131072 ] || tee_fail "the certificate table $entry/auxblob is $n bytes, over 131072"
  rm -f "$WORK"/snp-cert-*.der
  k=0
  while [ "$n" -gt 0 ]; do
    [ "$k" -le 16 ] || tee_fail "the certificate table in auxblob is malformed: more than 16 entries"
    o=$((k * 24))
    [ $((o + 24)) -le "$n" ] || tee_fail "the certificate table in auxblob is malformed: truncated at entry $k"
    guid=$(od -An -v -j "$o" -N16 -tx1 "$WORK/aux.bin" | tr -d ' \n')
    off=$(le32 "$WORK/aux.bin" $((o + 16))); len=$(le32 "$WORK/aux.bin" $((o + 20)))
    if [ "$guid" = 00000000000000000000000000000000 ] && [ "$off" -eq 0 ] && [ "$len" -eq 0 ]; then break; fi
    case $guid in
      63da758de6644564adc5f4b93be8accd) f=1 ;; 4ab7b379bbac4fe4a02f05aef327c782) f=2 ;;
      c0b406a4a803495297433fb6014cd0ae) f=3 ;; a8074bc2a25a483eaae639c045a0b8a1) f=6 ;; *) f= ;;
    esac
    if [ -n "$f" ] && [ "$len" -gt 0 ]; then
      [ "$len" -le 16384 ] || tee_fail "the certificate table in auxblob is malformed: a certificate of $len bytes, over 16384"
      [ $((off + len)) -le "$n" ] || tee_fail "the certificate table in auxblob is malformed: a certificate past its end"
      slice "$WORK/aux.bin" "$off" "$len" "$WORK/snp-cert-$f.der"
    fi
    k=$((k + 1))
  done
  : > "$WORK/snp-chain.pb"
  for f in 1 2 3 6; do
    if [ -f "$WORK/snp-cert-$f.der" ]; then pb_field "$f" "$WORK/snp-cert-$f.der" "$WORK/snp-chain.pb"; fi
  done
  : > "$WORK/snp.pb"
  pb_field 1 "$WORK/snp-report.pb" "$WORK/snp.pb"
  if [ -s "$WORK/snp-chain.pb" ]; then pb_field 2 "$WORK/snp-chain.pb" "$WORK/snp.pb"; fi
  # 3 product (sevsnp.SevProduct name: 1 Milan, 2 Genoa, 3 Turin) from the CPU's family and
  # model, as go-tpm-tools fills it from CPUID: an unsigned hint the broker checks against the
  # report and the VCEK; it needs it only to fetch the VCEK for a version 2 report.
  prod=$(awk -F: '
    /^cpu family[ \t]*:[ \t]*[0-9]+[ \t]*$/ && f == "" { f = $2 + 0 }
    /^model[ \t]*:[ \t]*[0-9]+[ \t]*$/ && m == "" { m = $2 + 0 }
    END {
      if (f == "" || m == "") exit
      hi = int(m / 16)
      if (f == 25 && hi == 0) print 1; else if (f == 25 && (hi == 1 || hi == 10)) print 2; else if (f == 26 && hi <= 1) print 3
    }' "$CPUINFO" 2>/dev/null || :)
  if [ -n "$prod" ]; then hex_to_file "1a02080$prod" "$WORK/snp-product.pb"; cat "$WORK/snp-product.pb" >> "$WORK/snp.pb"; fi
  SNP_PB=$WORK/snp.pb
}

gather_gcp() {
  # A Confidential VM's report first: one that cannot be had fails before any TPM work.
  gcp_tee
  # GCE's AK template and certificate: ECC (0x01c10003 / 0x01c10002) first, else RSA
  # (0x01c10001 / 0x01c10000).
  TEMPLATE=$WORK/gce-ak.template
  if nv_read 0x01c10003 "$TEMPLATE"; then CERT_IDX=0x01c10002
  elif nv_read 0x01c10001 "$TEMPLATE"; then CERT_IDX=0x01c10000
  else die 1 "JOIN_EVIDENCE_UNAVAILABLE: no GCE AK template in NV (0x01c10003 / 0x01c10001): not a Shielded VM with vTPM?"
  fi
  gce_ak "$TEMPLATE"
  # Every allocated bank of SHA-1/256/384, in the order the TPM lists them.
  BANKS=$(tpm2_getcap pcrs | awk '/^[ \t]*-[ \t]*(sha1|sha256|sha384)[ \t]*:[ \t]*\[[ \t]*[0-9]/ { b = $0; sub(/^[ \t]*-[ \t]*/, "", b); sub(/[ \t]*:.*$/, "", b); print b }')
  [ -n "$BANKS" ] || die 1 "JOIN_EVIDENCE_UNAVAILABLE: the TPM reports no allocated PCR bank"
  : > "$WORK/att.pb"
  pb_field 1 "$WORK/gce-ak.tpmt" "$WORK/att.pb"
  for bank in $BANKS; do
    case $bank in sha1) alg=04 size=20 ;; sha256) alg=0b size=32 ;; sha384) alg=0c size=48 ;; esac
    quote_all "$WORK/gce-ak.ctx" "$bank" tss
    [ "$(wc -c < "$WORK/q.pcrs" | tr -d ' ')" -eq $((size * 24)) ] || die 1 "JOIN_TPM_TOOL_FAILED: tpm2_quote wrote the wrong number of $bank PCR bytes"
    # tpm.PCRs: 1 hash (varint), 2 map<uint32, bytes> as entries {1: index, 2: digest}, ascending.
    hex_to_file "08$alg$(hex_file "$WORK/q.pcrs" | awk -v s="$size" '{
      for (i = 0; i < 24; i++) printf "12%02x08%02x12%02x%s", 4 + s, i, s, substr($0, i * 2 * s + 1, 2 * s) }')" "$WORK/pcrs.pb"
    : > "$WORK/quote.pb"
    pb_field 1 "$WORK/q.msg" "$WORK/quote.pb"
    pb_field 2 "$WORK/q.sig" "$WORK/quote.pb"
    pb_field 3 "$WORK/pcrs.pb" "$WORK/quote.pb"
    pb_field 2 "$WORK/quote.pb" "$WORK/att.pb"
  done
  if event_log_file; then pb_field 3 "$WORK/evlog" "$WORK/att.pb"; fi
  if nv_read "$CERT_IDX" "$WORK/akcert.nv"; then
    # Trimmed to the DER length (NV padding), as the bytes are: not re-encoded.
    len=$(od -An -v -N4 -tu1 "$WORK/akcert.nv" | awk '$1 == 48 { if ($2 < 128) print 2 + $2; else if ($2 == 129) print 3 + $3; else if ($2 == 130) print 4 + $3 * 256 + $4 }')
    if [ -n "$len" ] && [ "$len" -le "$(wc -c < "$WORK/akcert.nv" | tr -d ' ')" ]; then
      slice "$WORK/akcert.nv" 0 "$len" "$WORK/akcert.der"
    else
      cp "$WORK/akcert.nv" "$WORK/akcert.der"
    fi
    pb_field 6 "$WORK/akcert.der" "$WORK/att.pb"
  fi
  # oneof tee_attestation: 8 sev_snp_attestation (go-sev-guest sevsnp.Attestation).
  if [ -n "$SNP_PB" ]; then pb_field 8 "$SNP_PB" "$WORK/att.pb"; fi
  FORMAT=gotpm
  printf '{"attestation":"%s"}' "$(openssl base64 -A -in "$WORK/att.pb")" > "$WORK/evidence.json"
}

# --- NitroTPM without nitro-tpm-attest ---------------------------------------------------------
# The NitroTPM answers an AWS vendor command, TPM2_CC 0x20000001 (the vendor bit 0x20000000 | 1),
# with the Nitro Secure Module behind it. Facts followed (read, not copied): AWS's NitroTPM-Tools,
# nitro-tpm-attest/src/raw/tpm/mod.rs (command code, handles) and tss/message_buffer (the buffer),
# and lockboot/vaportpm crates/vaportpm-attest/src/nsm.rs (a password session works; the kernel
# resource manager does not pass the command, so it goes to /dev/tpm0, as AWS's tool does):
# - the NSM request, CBOR {"Attestation": {"user_data", "nonce", "public_key"}} (byte strings or
#   null), is written into an NV index the caller defines (authread|authwrite, 8 KiB: the plain
#   document is near 5 KiB);
# - the command: tag TPM_ST_SESSIONS, handles (nvAuth = nvIndex, nvIndex), one authorization for
#   the index, no parameters; the NSM's answer replaces the buffer's contents from offset 0:
#   CBOR {"Attestation": {"document": bstr}} or {"Error": "<code>"}, then padding;
# - the index is undefined afterwards (and by the exit trap on any failure).
# Every command of the exchange is sent raw (tpm2_send) with plain password sessions (TPM 2.0
# Part 3: NV_DefineSpace, NV_Write, NV_Read, NV_UndefineSpace): the same bytes as the Node client
# (deploy/node/client/nitro.ts), over ATTEST_NITRO_TCTI (default: TPM2TOOLS_TCTI if set, else
# device:/dev/tpm0).
NITRO_NV_SIZE=${ATTEST_NITRO_NV_SIZE:-8192}
case $NITRO_NV_SIZE in ''|*[!0-9]*) die 2 "ATTEST_NITRO_NV_SIZE must be a byte count" ;; esac
if [ "$NITRO_NV_SIZE" -lt 1024 ] || [ "$NITRO_NV_SIZE" -gt 65535 ]; then die 2 "ATTEST_NITRO_NV_SIZE must be 1024-65535"; fi
NITRO_TCTI=${ATTEST_NITRO_TCTI:-${TPM2TOOLS_TCTI:-device:/dev/tpm0}}
NITRO_CHUNK=1024
PW_EMPTY=400000090000000000
# tpm_send HEX OUT: sends the command HEX spells, the response to OUT; sets TPM_RC (8 hex digits)
# once the frame is checked (tag 8001/8002, size = the bytes received); status 1 on no or a
# malformed answer (TPM_WHY says which). TPM_RC_RETRY / YIELDED / TESTING (0x922, 0x908, 0x90a:
# the TPM asks to be asked again, as the TSS does for the tools) are retried up to 10 times.
tpm_send() {
  tries=0
  while :; do
    tpm_send_once "$1" "$2" || return 1
    case $TPM_RC in 00000922|00000908|0000090a) ;; *) return 0 ;; esac
    tries=$((tries + 1)); [ "$tries" -lt 10 ] || return 0
    sleep 1
  done
}
tpm_send_once() {
  hex_to_file "$1" "$WORK/tpm-cmd.bin"
  rm -f "$2"; TPM_RC=""; TPM_WHY=""
  if ! tpm2_send -T "$NITRO_TCTI" -o "$2" < "$WORK/tpm-cmd.bin" 2>"$WORK/tpm-send.err"; then
    TPM_WHY="no answer ($(tail -n1 "$WORK/tpm-send.err" 2>/dev/null))"; return 1
  fi
  rh=$(od -An -v -N10 -tx1 "$2" | tr -d ' \n')
  rn=$(wc -c < "$2" | tr -d ' ')
  [ "${#rh}" -eq 20 ] || { TPM_WHY="response of $rn bytes"; return 1; }
  case $rh in 8001*|8002*) ;; *) TPM_WHY="response tag ${rh%"${rh#????}"}"; return 1 ;; esac
  rsize=$(printf '%d' "0x$(printf '%s' "$rh" | cut -c5-12)")
  [ "$rsize" -eq "$rn" ] || { TPM_WHY="response says $rsize bytes, has $rn"; return 1; }
  TPM_RC=$(printf '%s' "$rh" | cut -c13-20)
}
# hex4 N / hex8 N: N as 4 / 8 hex digits.
hex4() { printf '%04x' "$1"; }
hex8() { printf '%08x' "$1"; }
# nitro_vendor_doc NONCEFILE [SPKIFILE] → $WORK/nitro.doc
nitro_vendor_doc() {
  nonce_hex=$(hex_file "$1")
  # 41 74 74 65 73 74 61 74 69 6f 6e = "Attestation"; user_data null; nonce bstr(32);
  # public_key bstr(SPKI) or null.
  req="a16b4174746573746174696f6ea369757365725f64617461f6656e6f6e63655820${nonce_hex}6a7075626c69635f6b6579"
  if [ -n "${2:-}" ]; then
    spki_len=$(wc -c < "$2" | tr -d ' ')
    if [ "$spki_len" -eq 0 ] || [ "$spki_len" -gt 900 ]; then die 1 "JOIN_EVIDENCE_UNAVAILABLE: recipient key of $spki_len bytes"; fi
    req="${req}59$(hex4 "$spki_len")$(hex_file "$2")"
  else
    req="${req}f6"
  fi
  req_len=$((${#req} / 2))
  # The index's password (TPM2B_AUTH, 32 random bytes) and its password authorization.
  pw=$(od -An -v -N32 -tx1 /dev/urandom | tr -d ' \n')
  # The first free index of the owner range 0x01000000.., the next if another process has it.
  used=$(tpm2_getcap -T "$NITRO_TCTI" handles-nv-index 2>/dev/null | tr 'A-F' 'a-f' | sed -n 's/^- *0x0*\([0-9a-f]*\)$/\1/p')
  i=0; nv=""
  while [ "$i" -lt 64 ] && [ -z "$nv" ]; do
    cand=$(printf '1%06x' "$i"); i=$((i + 1))
    printf '%s\n' "$used" | grep -qx "$cand" && continue
    # NV_DefineSpace (0x12a) by the owner (empty password): TPM2B_AUTH, TPM2B_NV_PUBLIC {index,
    # SHA-256, AUTHREAD|AUTHWRITE (0x00040004), no policy, size}.
    tpm_send "8002$(hex8 77)0000012a40000001$(hex8 9)${PW_EMPTY}0020${pw}000e0${cand}000b000400040000$(hex4 "$NITRO_NV_SIZE")" "$WORK/nv-def.rsp" \
      || die 1 "JOIN_TPM_TOOL_FAILED: NV_DefineSpace: $TPM_WHY"
    case $TPM_RC in
      00000000) nv=0$cand ;;
      0000014c) ;; # TPM_RC_NV_DEFINED: taken meanwhile
      *) die 1 "JOIN_TPM_TOOL_FAILED: NV_DefineSpace of the $NITRO_NV_SIZE-byte NSM buffer: TPM response code 0x$TPM_RC" ;;
    esac
  done
  [ -n "$nv" ] || die 1 "JOIN_TPM_TOOL_FAILED: no free NV index for the NSM buffer"
  NITRO_NV=0x$nv
  auth="$(hex8 41)400000090000000020${pw}"
  # NV_Write (0x137) of the request at offset 0 (one chunk: the request is under 1 KiB).
  [ "$req_len" -le "$NITRO_CHUNK" ] || die 1 "JOIN_EVIDENCE_UNAVAILABLE: NSM request of $req_len bytes"
  tpm_send "8002$(hex8 $((67 + req_len)))00000137${nv}${nv}${auth}$(hex4 "$req_len")${req}0000" "$WORK/nv-write.rsp" \
    || die 1 "JOIN_TPM_TOOL_FAILED: NV_Write: $TPM_WHY"
  [ "$TPM_RC" = 00000000 ] || die 1 "JOIN_TPM_TOOL_FAILED: NV_Write of the NSM request: TPM response code 0x$TPM_RC"
  # The vendor command: TPM2_CC 0x20000001, handles (nv, nv), the index's password.
  tpm_send "8002$(hex8 63)20000001${nv}${nv}${auth}" "$WORK/nitro-rsp.bin" \
    || die 1 "JOIN_NITRO_COMMAND_FAILED: NitroTPM vendor command: $TPM_WHY"
  [ "$TPM_RC" = 00000000 ] || die 1 "JOIN_NITRO_COMMAND_FAILED: NitroTPM vendor command: TPM response code 0x$TPM_RC (0x00000143: not a NitroTPM)"
  # NV_Read (0x14e) of the whole buffer, chunk by chunk; each answer is
  # header(10) parameterSize(4) TPM2B(2 + n) password acknowledgement(5).
  : > "$WORK/nsm-rsp.cbor"
  off=0
  while [ "$off" -lt "$NITRO_NV_SIZE" ]; do
    n=$((NITRO_NV_SIZE - off)); [ "$n" -gt "$NITRO_CHUNK" ] && n=$NITRO_CHUNK
    tpm_send "8002$(hex8 67)0000014e${nv}${nv}${auth}$(hex4 "$n")$(hex4 "$off")" "$WORK/nv-read.rsp" \
      || die 1 "JOIN_TPM_TOOL_FAILED: NV_Read: $TPM_WHY"
    [ "$TPM_RC" = 00000000 ] || die 1 "JOIN_TPM_TOOL_FAILED: NV_Read of the NSM response: TPM response code 0x$TPM_RC"
    got=$(od -An -v -j14 -N2 -tu1 "$WORK/nv-read.rsp" | awk '{ print $1 * 256 + $2 }')
    if [ "$got" != "$n" ] || [ "$(wc -c < "$WORK/nv-read.rsp" | tr -d ' ')" -lt $((16 + n)) ]; then
      die 1 "JOIN_TPM_TOOL_FAILED: NV_Read answered ${got:-no} bytes for $n"
    fi
    slice "$WORK/nv-read.rsp" 16 "$n" "$WORK/nv-chunk.bin"
    cat "$WORK/nv-chunk.bin" >> "$WORK/nsm-rsp.cbor"
    off=$((off + n))
  done
  nitro_undefine
  nitro_parse_rsp "$WORK/nsm-rsp.cbor" "$WORK/nitro.doc"
}
# nitro_undefine: NV_UndefineSpace (0x122) of the buffer by the owner; best effort.
nitro_undefine() {
  [ -n "$NITRO_NV" ] || return 0
  if ! tpm_send "8002$(hex8 31)0000012240000001${NITRO_NV#0x}$(hex8 9)${PW_EMPTY}" "$WORK/nv-undef.rsp" || [ "$TPM_RC" != 00000000 ]; then
    log "warning: could not undefine NV $NITRO_NV"
  fi
  NITRO_NV=""
}
# nitro_parse_rsp BUFFER DOCFILE: the NSM response at the start of the buffer, bounds-checked.
nitro_parse_rsp() {
  total=$(wc -c < "$1" | tr -d ' ')
  head=$(od -An -v -N32 -tx1 "$1" | tr -d ' \n')
  # a1 6b "Attestation" a1 68 "document" then the byte string's header
  pre=a16b4174746573746174696f6ea168646f63756d656e74
  case $head in
    "$pre"*) ;;
    a165457272*)
      # {"Error": text}: the NSM's own code, letters only
      why=$(dd if="$1" bs=1 skip=8 count=40 2>/dev/null | tr -cd 'A-Za-z' | cut -c1-32)
      die 1 "JOIN_NITRO_NSM_ERROR: the NSM refused the request: ${why:-unknown}" ;;
    *) die 1 "JOIN_NITRO_RESPONSE_INVALID: the buffer holds no NSM attestation response" ;;
  esac
  rest=${head#"$pre"}
  case $rest in
    58*) dlen=$(printf '%d' "0x$(printf '%s' "$rest" | cut -c3-4)"); doff=$((${#pre} / 2 + 2)) ;;
    59*) dlen=$(printf '%d' "0x$(printf '%s' "$rest" | cut -c3-6)"); doff=$((${#pre} / 2 + 3)) ;;
    5a*) dlen=$(printf '%d' "0x$(printf '%s' "$rest" | cut -c3-10)"); doff=$((${#pre} / 2 + 5)) ;;
    *) die 1 "JOIN_NITRO_RESPONSE_INVALID: the document is not a definite byte string" ;;
  esac
  if [ "$dlen" -eq 0 ] || [ $((doff + dlen)) -gt "$total" ]; then
    die 1 "JOIN_NITRO_RESPONSE_INVALID: document of $dlen bytes at offset $doff overruns the $total-byte buffer"
  fi
  slice "$1" "$doff" "$dlen" "$2"
  [ "$(wc -c < "$2" | tr -d ' ')" -eq "$dlen" ] || die 1 "JOIN_NITRO_RESPONSE_INVALID: short document"
}

gather_aws() {
  # AWS's nitro-tpm-attest (aws-nitro-tpm-tools), when installed, takes the nonce as a file of raw
  # bytes and writes the COSE_Sign1 attestation document, signed under the AWS Nitro root, to
  # stdout. Without it the client sends the NitroTPM vendor command itself (nitro_vendor_doc).
  NITRO_VIA=tool
  command -v "$NITRO_TPM_ATTEST" >/dev/null 2>&1 || NITRO_VIA=vendor
  if [ "$NITRO_VIA" = vendor ]; then
    command -v tpm2_send >/dev/null 2>&1 || die 1 "JOIN_EVIDENCE_UNAVAILABLE: neither $NITRO_TPM_ATTEST nor tpm2_send found (Amazon Linux 2023: dnf install aws-nitro-tpm-tools)"
  fi
  hex_to_file "$BINDING" "$WORK/nitro-nonce.bin"
  set -- --nonce "$WORK/nitro-nonce.bin"
  if [ -n "$DISK_KEY_OUT" ] && [ -z "$GATHER_ONLY" ]; then
    # KMS Recipient: a fresh RSA key (this attempt only) whose public half the hypervisor signs
    # into the document as public_key; KMS encrypts the disk key to it and the broker never sees it.
    # --key-in-tpm: the key is made in the TPM (tpm_rsa_key) and CMS is opened with its help.
    if [ -n "$KEY_IN_TPM" ]; then
      tpm_rsa_key recipient
      openssl pkey -pubin -in "$WORK/recipient.pem" -outform DER -out "$WORK/recipient.spki" 2>/dev/null \
        || die 1 "JOIN_EVIDENCE_UNAVAILABLE: cannot export the TPM recipient key"
    elif ! openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/recipient.key" 2>/dev/null \
      || ! openssl pkey -in "$WORK/recipient.key" -pubout -outform DER -out "$WORK/recipient.spki" 2>/dev/null; then
      die 1 "JOIN_EVIDENCE_UNAVAILABLE: cannot make the KMS recipient key"
    fi
    set -- "$@" --public-key "$WORK/recipient.spki"
  fi
  if [ "$NITRO_VIA" = vendor ]; then
    nitro_vendor_doc "$WORK/nitro-nonce.bin" ${4:+"$4"}
  else
    "$NITRO_TPM_ATTEST" "$@" > "$WORK/nitro.doc" || die 1 "JOIN_EVIDENCE_UNAVAILABLE: $NITRO_TPM_ATTEST failed"
    [ -s "$WORK/nitro.doc" ] || die 1 "JOIN_EVIDENCE_UNAVAILABLE: $NITRO_TPM_ATTEST printed no document"
  fi
  FORMAT=nitrotpm
  printf '{"document":"%s"}' "$(openssl base64 -A -in "$WORK/nitro.doc")" > "$WORK/evidence.json"
}

gather() { # $1 = extra members for `tpm` (activation)
  case $PLATFORM in
    generic) gather_tpm "$1" ;;
    azure) gather_azure ;;
    gcp) gather_gcp ;;
    aws) gather_aws ;;
  esac
}

# --- one attempt: challenge → evidence → attest (→ activation) -------------------------------
get_challenge() { # sets CH_ID and BINDING
  printf '{"provider":"%s","cluster":"%s"}' "$PROVIDER" "$CLUSTER" > "$WORK/ch.json"
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
  if [ "$PLATFORM" = generic ]; then
    # binding = nonce (protocol §2): the release is sealed to this TPM by credential activation
    # (broker release.tpmSeal), or sent unsealed where the cluster's policy allows it.
    BINDING=$(hex_file "$WORK/nonce.bin")
  else
    # Cloud evidence carries no EK: the release is sealed to a fresh key of this attempt instead.
    ephemeral_key
  fi
}

# tpm_rsa_key NAME: an RSA-2048 decrypt key made inside the TPM (--key-in-tpm): tpm2_create under
# an owner primary, decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth, scheme
# RSAES-OAEP with SHA-256 (MGF1-SHA-256, empty label: RSA-OAEP-256 and KMS's RSAES_OAEP_SHA_256);
# $WORK/NAME.ctx (the loaded key's context), $WORK/NAME.pem (its public half). The private half
# exists only inside the TPM (the work directory holds its TPM-wrapped blob).
tpm_key_flush() { tpm2_flushcontext -t >/dev/null 2>&1 || :; tpm2_flushcontext -s >/dev/null 2>&1 || :; }
tpm_rsa_key() {
  rm -f "$WORK/$1-parent.ctx" "$WORK/$1.ctx" "$WORK/$1.tpub" "$WORK/$1.tpriv" "$WORK/$1.pem"
  tpm2_createprimary -C o -G ecc256:aes128cfb -c "$WORK/$1-parent.ctx" >/dev/null 2>&1 \
    || die 1 "JOIN_TPM_TOOL_FAILED: tpm2_createprimary (the parent of the TPM-resident key)"
  tpm_key_flush
  tpm2_create -C "$WORK/$1-parent.ctx" -G rsa2048:oaep-sha256:null \
    -a 'decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth' \
    -u "$WORK/$1.tpub" -r "$WORK/$1.tpriv" >/dev/null 2>&1 || die 1 "JOIN_TPM_TOOL_FAILED: tpm2_create (RSA-2048 decrypt key)"
  tpm_key_flush
  tpm2_load -C "$WORK/$1-parent.ctx" -u "$WORK/$1.tpub" -r "$WORK/$1.tpriv" -c "$WORK/$1.ctx" >/dev/null 2>&1 \
    || die 1 "JOIN_TPM_TOOL_FAILED: tpm2_load"
  tpm_key_flush
  tpm2_readpublic -c "$WORK/$1.ctx" -f pem -o "$WORK/$1.pem" >/dev/null 2>&1 || die 1 "JOIN_TPM_TOOL_FAILED: tpm2_readpublic"
  tpm_key_flush
}
# tpm_oaep_decrypt NAME IN OUT: RSAES-OAEP-SHA-256 decryption by the TPM key NAME (the key's own
# scheme: -s null); status 1 when the TPM refuses (wrong key, bad padding).
tpm_oaep_decrypt() {
  dec_rc=0
  tpm2_rsadecrypt -c "$WORK/$1.ctx" -s null -o "$3" "$2" >/dev/null 2>&1 || dec_rc=1
  tpm_key_flush
  return "$dec_rc"
}

# ephemeral_key: a fresh RSA-2048 key for this attempt (0600 in the private work directory,
# removed at exit); its public JWK in $EPH_JWK and binding = SHA-256(nonce ‖ RFC 7638 thumbprint)
# (protocol §2). The broker seals the release to it with RSA-OAEP-256 and A128CBC-HS256, which
# the openssl command line opens (open_ephemeral_sealed).
#
# --key-in-tpm (ATTEST_KEY_IN_TPM=1): the key is made inside the TPM instead and never leaves it —
# tpm2_create under an owner primary, RSA-2048, decrypt only, fixedtpm|fixedparent|
# sensitivedataorigin, scheme RSAES-OAEP with SHA-256 (MGF1-SHA-256 and the empty label: what
# RSA-OAEP-256 means); its public half (tpm2_readpublic -f pem) makes the same JWK, and
# tpm2_rsadecrypt unwraps the content key (open_ephemeral_sealed). Only the TPM's wrapped blob
# and context files are in the work directory.
ephemeral_key() {
  if [ -n "$KEY_IN_TPM" ]; then
    tpm_rsa_key eph
    EPH_PUBIN=-pubin; EPH_IN=$WORK/eph.pem
  else
    (umask 077; openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/eph.key" 2>/dev/null) \
      || die 1 "JOIN_TOOL_FAILED: openssl genpkey (RSA-2048)"
    EPH_PUBIN=""; EPH_IN=$WORK/eph.key
  fi
  # shellcheck disable=SC2086 # $EPH_PUBIN is empty or one word
  [ "$(openssl rsa $EPH_PUBIN -in "$EPH_IN" -noout -text 2>/dev/null | sed -n -e 's/^publicExponent: \([0-9]*\).*/\1/p' -e 's/^Exponent: \([0-9]*\).*/\1/p')" = 65537 ] \
    || die 1 "JOIN_TOOL_FAILED: the ephemeral key's exponent is not 65537"
  # shellcheck disable=SC2086
  N_HEX=$(openssl rsa $EPH_PUBIN -in "$EPH_IN" -noout -modulus 2>/dev/null | sed -n 's/^Modulus=//p' | tr 'A-F' 'a-f')
  [ ${#N_HEX} -eq 512 ] || die 1 "JOIN_TOOL_FAILED: the ephemeral key is not 2048 bits"
  hex_to_file "$N_HEX" "$WORK/eph.n"
  # RFC 7638: the required members in lexicographic order, no whitespace — the JWK sent is that text.
  EPH_JWK="{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"$(b64url_file "$WORK/eph.n")\"}"
  printf '%s' "$EPH_JWK" | openssl dgst -sha256 -binary > "$WORK/eph.tp"
  cat "$WORK/nonce.bin" "$WORK/eph.tp" | openssl dgst -sha256 -binary > "$WORK/binding.bin"
  BINDING=$(hex_file "$WORK/binding.bin")
}

make_keys() { # EK (RSA, matches the EK certificate at NV 0x01c00002) and a fresh AK under it
  tpm2_createek -c "$WORK/ek.ctx" -G rsa -u "$WORK/ek.pub" -f tss >/dev/null || die 1 "JOIN_TPM_TOOL_FAILED: tpm2_createek"
  tpm2_flushcontext -t >/dev/null 2>&1 || :
  tpm2_createak -C "$WORK/ek.ctx" -c "$WORK/ak.ctx" -G ecc -g sha256 -s ecdsa -u "$WORK/ak.pub" -n "$WORK/ak.name" -r "$WORK/ak.priv" -f tss >/dev/null \
    || die 1 "JOIN_TPM_TOOL_FAILED: tpm2_createak"
  tpm2_flushcontext -t >/dev/null 2>&1 || :; tpm2_flushcontext -s >/dev/null 2>&1 || :
}

# --- GPUs: the operator's gatherer (docs/nvidia.md; the TypeScript client's gpu.node.ts) ------
GPU_MAX_BYTES=4194304
GPU_MAX_ENTRIES=64
GPU_MAX_DEPTH=64
GPU_HOWTO='run it by hand with a 64-hex-digit nonce to see what it prints'
gpu_fail() { die 1 "JOIN_GPU_EVIDENCE_FAILED: $*"; }
# gpu_json_check FILE: "ok N" when FILE is one JSON value (RFC 8259; whitespace around it) that is
# an array of 1..GPU_MAX_ENTRIES objects, each with string "evidence" and "certificate" members
# (the last of a repeated member counts, as in JSON.parse), nested at most GPU_MAX_DEPTH deep;
# otherwise one line saying what is wrong. The file is printable ASCII (checked before).
gpu_json_check() {
  awk -v maxn="$GPU_MAX_ENTRIES" -v maxd="$GPU_MAX_DEPTH" '
    function bad(why) { if (err == "") err = why; return "" }
    function ws(   c) { while (p <= n) { c = substr(s, p, 1); if (c == " " || c == "\t" || c == "\n" || c == "\r") p++; else return } }
    function str(   c, e) { # at the opening quote; returns 1 and moves past the closing one
      p++
      while (p <= n) {
        if (match(substr(s, p, 4096), /^[^"\\\t\n\r]+/)) { p += RLENGTH; continue }
        c = substr(s, p, 1)
        if (c == "\"") { p++; return 1 }
        if (c != "\\") return 0
        e = substr(s, p + 1, 1)
        if (index("\"\\/bfnrt", e) > 0) p += 2
        else if (e == "u" && substr(s, p + 2, 4) ~ /^[0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f]$/) p += 6
        else return 0
      }
      return 0
    }
    function keytext(t,   out, i, c, h, v, k) { # a member name, the escapes that can spell ASCII decoded
      if (index(t, "\\") == 0) return t
      out = ""; i = 1
      while (i <= length(t)) {
        c = substr(t, i, 1)
        if (c != "\\") { out = out c; i++; continue }
        c = substr(t, i + 1, 1)
        if (c == "u") { h = tolower(substr(t, i + 2, 4)); v = 0
          for (k = 1; k <= 4; k++) v = v * 16 + index("0123456789abcdef", substr(h, k, 1)) - 1
          out = out (v >= 32 && v < 127 ? sprintf("%c", v) : "?"); i += 6 }
        else { out = out (c == "\"" || c == "\\" || c == "/" ? c : "?"); i += 2 }
      }
      return out
    }
    function value(d,   c, t) { # returns the type: s n l a o, or "" on error
      ws(); c = substr(s, p, 1)
      if (c == "\"") return str() ? "s" : bad("a malformed JSON string")
      if (c == "[") return arr(d + 1)
      if (c == "{") return obj(d + 1)
      if (substr(s, p, 4) == "true" || substr(s, p, 4) == "null") { p += 4; return "l" }
      if (substr(s, p, 5) == "false") { p += 5; return "l" }
      if (match(substr(s, p, 1024), /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/)) { p += RLENGTH; return "n" }
      return bad(p > n ? "truncated JSON" : "not JSON at byte " p)
    }
    function arr(d,   c, k) {
      if (d > maxd) return bad("JSON nested deeper than " maxd)
      p++; ws(); k = 0
      if (substr(s, p, 1) == "]") { p++; if (d == 1) count = 0; return "a" }
      for (;;) {
        k++
        if (d == 1) { if (k > maxn) return bad("more than " maxn " entries"); hasev = 0; hascert = 0 }
        t = value(d)
        if (t == "") return ""
        if (d == 1) {
          if (t != "o") return bad("entry " (k - 1) " of the GPU evidence is not an object")
          if (!hasev || !hascert) return bad("entry " (k - 1) " of the GPU evidence lacks string \"evidence\" and \"certificate\" members: is the command printing the nvtrust evidence array?")
        }
        ws(); c = substr(s, p, 1)
        if (c == ",") { p++; continue }
        if (c == "]") { p++; if (d == 1) count = k; return "a" }
        return bad(p > n ? "truncated JSON" : "not JSON at byte " p)
      }
    }
    function obj(d,   c, st, key, t) {
      if (d > maxd) return bad("JSON nested deeper than " maxd)
      p++; ws()
      if (substr(s, p, 1) == "}") { p++; return "o" }
      for (;;) {
        ws()
        if (substr(s, p, 1) != "\"") return bad(p > n ? "truncated JSON" : "not JSON at byte " p)
        st = p
        if (!str()) return bad("a malformed JSON string")
        key = keytext(substr(s, st + 1, p - st - 2))
        ws()
        if (substr(s, p, 1) != ":") return bad(p > n ? "truncated JSON" : "not JSON at byte " p)
        p++
        t = value(d)
        if (t == "") return ""
        if (d == 2 && key == "evidence") hasev = (t == "s")
        if (d == 2 && key == "certificate") hascert = (t == "s")
        ws(); c = substr(s, p, 1)
        if (c == ",") { p++; continue }
        if (c == "}") { p++; return "o" }
        return bad(p > n ? "truncated JSON" : "not JSON at byte " p)
      }
    }
    BEGIN { RS = "\001" }
    { s = s $0 }
    END {
      n = length(s); p = 1; err = ""; count = -1
      ws()
      if (p > n) { print "no JSON at all"; exit }
      if (substr(s, p, 1) != "[") {
        t = value(0); ws()
        if (err != "") print err; else if (p <= n) print "more than one JSON value (byte " p ")"; else print "JSON that is not an array"
        exit
      }
      t = arr(1)
      if (err != "") { print err; exit }
      ws()
      if (p <= n) { print "more than one JSON value (byte " p ")"; exit }
      if (count == 0) { print "empty"; exit }
      print "ok " count
    }' "$1"
}
# gpu_evidence: runs $GPU_CMD for $BINDING; the checked array in $WORK/gpu.json.
gpu_evidence() {
  t=$(remaining)
  [ "$t" -ge 1 ] || gpu_fail "no time left before the join deadline to run $GPU_CMD"
  rm -f "$WORK/gpu.json" "$WORK/gpu.rc"
  # Its own process group under timeout(1), killed with its children at the deadline; stdout
  # through head, so no more than one byte past the limit is ever kept.
  { gpu_rc=0; ATTEST_GPU_NONCE=$BINDING timeout -s KILL "$t" "$GPU_CMD" "$BINDING" </dev/null || gpu_rc=$?; echo "$gpu_rc" > "$WORK/gpu.rc"; } \
    | head -c $((GPU_MAX_BYTES + 1)) > "$WORK/gpu.json"
  n=$(wc -c < "$WORK/gpu.json" | tr -d ' ')
  [ "$n" -le "$GPU_MAX_BYTES" ] \
    || gpu_fail "the GPU evidence command $GPU_CMD printed more than $GPU_MAX_BYTES bytes; killed. It must print only the nvtrust evidence JSON array"
  gpu_rc=$(cat "$WORK/gpu.rc" 2>/dev/null || echo 1)
  case $gpu_rc in
    0) ;;
    137) gpu_fail "the GPU evidence command $GPU_CMD did not finish before the join deadline (${t} s left when it started) or was killed; $GPU_HOWTO, or raise --deadline" ;;
    *) gpu_fail "the GPU evidence command $GPU_CMD exited with status $gpu_rc: its stderr is above; $GPU_HOWTO (nvtrust installed? driver loaded? GPUs in CC mode?)" ;;
  esac
  if LC_ALL=C tr -d '\t\n\r\040-\176' < "$WORK/gpu.json" | LC_ALL=C grep -q '' ; then
    gpu_fail "the GPU evidence command $GPU_CMD printed a byte that is not printable ASCII: it must print only the nvtrust evidence JSON array; $GPU_HOWTO"
  fi
  verdict=$(gpu_json_check "$WORK/gpu.json")
  case $verdict in
    "ok "*) ;;
    "no JSON at all"|truncated*|"not JSON"*|"a malformed"*|"more than one"*) gpu_fail "the GPU evidence command printed something that is not JSON ($verdict): it must print only the nvtrust evidence JSON array (log lines go to stderr); $GPU_HOWTO" ;;
    "JSON that is not an array") gpu_fail "the GPU evidence command printed JSON that is not an array: it must print the nvtrust evidence array ([{\"evidence\":...,\"certificate\":...},...])" ;;
    empty) gpu_fail "the GPU evidence command printed an empty array: no GPU answered (driver loaded? GPUs in CC mode?); drop --gpu-evidence-cmd on nodes without GPUs" ;;
    *) gpu_fail "the GPU evidence command printed $verdict" ;;
  esac
}

build_attest() { # $1 = extra evidence members for `tpm` (the activation answer); → attest.json
  gather "$1"
  # The GPUs are asked with the same binding as the platform evidence: one challenge covers both.
  [ -z "$GPU_CMD" ] || gpu_evidence
  {
    printf '{"challengeId":"%s","provider":"%s","format":"%s","want":[%s],' "$CH_ID" "$PROVIDER" "$FORMAT" "$WANT"
    [ -n "$WRAPPED_IN" ] && printf '"diskKey":{"wrapped":"%s"},' "$WRAPPED_IN"
    [ "$PLATFORM" = generic ] || printf '"ephemeralKey":%s,"sealEnc":"A128CBC-HS256",' "$EPH_JWK"
    if [ -n "$GPU_CMD" ]; then
      printf '"devices":[{"kind":"nvidia-gpu","evidence":'
      cat "$WORK/gpu.json"
      printf '}],'
    fi
    printf '"evidence":'
    cat "$WORK/evidence.json"
    printf '}'
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
  if [ "$PLATFORM" = generic ]; then make_keys; fi
  build_attest ""
  send_attest

  if [ "$(problem_code)" = ACTIVATION_REQUIRED ]; then
    [ "$PLATFORM" = generic ] || die 1 "JOIN_ACTIVATION_INVALID: the broker asked for credential activation, which the $FORMAT format does not do"
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

if [ -n "$GATHER_ONLY" ]; then
  BINDING=$GATHER_BINDING
  if [ "$PLATFORM" = generic ]; then make_keys; fi
  gather ""
  printf '{"provider":"%s","format":"%s","evidence":' "$PROVIDER" "$FORMAT"
  cat "$WORK/evidence.json"
  printf '}\n'
  exit 0
fi

until discover_ca; do
  rc=$?
  [ $rc -eq 4 ] && die 1 "JOIN_TLS_PIN_MISMATCH: no certificate in the broker's chain matches --ca-pin"
  [ $rc -eq 5 ] && die 1 "JOIN_TLS_VERIFY_FAILED: the broker's certificate does not verify against the pinned CA"
  backoff 0 "broker unreachable at $HOST:$PORT"
done

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
# b64url_upto S MAX: S is 1..MAX base64url characters. The length is checked by the shell, not by a
# grep bound: GNU grep builds a DFA for {1,8192} that took ~8 s of CPU per check (measured).
b64url_upto() { [ ${#1} -ge 1 ] && [ ${#1} -le "$2" ] && one_line "$1" '^[A-Za-z0-9_-]+$'; }

# open_cbc_hs256 KEYHEX H IV CT TAG: the content of a compact JWE with enc A128CBC-HS256
# (RFC 7518 §5.2.2.2): the tag (HMAC-SHA-256 over AAD ‖ IV ‖ ciphertext ‖ AL, first 16 bytes) is
# checked before anything is decrypted; the plaintext (the release JSON) goes to $WORK/resp.
open_cbc_hs256() {
  [ ${#1} -eq 64 ] || die 1 "JOIN_RELEASE_INVALID: the content key is not 32 bytes"
  MAC_KEY=$(printf '%s' "$1" | cut -c1-32); ENC_KEY=$(printf '%s' "$1" | cut -c33-64)
  for part in "$3:iv" "$4:ct" "$5:tag"; do
    b64url_decode_to "${part%:*}" "$WORK/jwe.${part##*:}" || die 1 "JOIN_RELEASE_INVALID: JWE ${part##*:} is not base64url"
  done
  for f in iv tag; do [ "$(wc -c < "$WORK/jwe.$f" | tr -d ' ')" = 16 ] || die 1 "JOIN_RELEASE_INVALID: JWE $f is not 16 bytes"; done
  printf '%s' "$2" > "$WORK/jwe.mac"
  cat "$WORK/jwe.iv" "$WORK/jwe.ct" >> "$WORK/jwe.mac"
  hex_to_file "$(printf '%016x' $((${#2} * 8)))" "$WORK/jwe.al"
  cat "$WORK/jwe.al" >> "$WORK/jwe.mac"
  want=$(openssl dgst -sha256 -mac HMAC -macopt "hexkey:$MAC_KEY" -binary "$WORK/jwe.mac" | od -An -v -tx1 | tr -d ' \n' | cut -c1-32)
  [ "$want" = "$(hex_file "$WORK/jwe.tag")" ] || die 1 "JOIN_RELEASE_INVALID: the sealed release's tag does not verify"
  openssl enc -d -aes-128-cbc -K "$ENC_KEY" -iv "$(hex_file "$WORK/jwe.iv")" -in "$WORK/jwe.ct" -out "$WORK/resp" \
    || die 1 "JOIN_RELEASE_INVALID: cannot decrypt the sealed release"
  MAC_KEY=""; ENC_KEY=""
}

# open_tpm_sealed JWE: the release sealed to this TPM (broker release.tpmSeal; docs/protocol.md §4):
# compact JWE, alg dir, enc A128CBC-HS256, the 32-byte key recovered with tpm2_activatecredential
# from the header's tpm_cred — only this TPM, with the AK that quoted, can.
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
  open_cbc_hs256 "$K" "$H" "$IV" "$CT" "$TAG"; K=""
}

# open_ephemeral_sealed JWE: the release sealed to this attempt's key (protocol §3): compact JWE,
# alg RSA-OAEP-256 (the content key unwrapped by openssl pkeyutl with OAEP, SHA-256 and
# MGF1-SHA-256), enc A128CBC-HS256, kid = the key's thumbprint.
# cms_open_tpm CMSFILE KEYNAME OUT: the KMS Recipient CMS opened with the TPM key KEYNAME, since
# openssl cms needs the private key. `openssl asn1parse` parses the DER (bounds-checked by
# openssl); the shape is then checked line by line as deploy/node/client/cms.ts does (RFC 5652
# §6.1 EnvelopedData, exactly one KeyTransRecipientInfo, RSAES-OAEP with SHA-256 and MGF1-SHA-256
# (RFC 4055), AES-256-CBC with a 16-byte IV (RFC 3565), nothing after); the TPM unwraps the content
# key and openssl enc decrypts the content.
cms_open_tpm() {
  size=$(wc -c < "$1" | tr -d ' ')
  openssl asn1parse -inform DER -in "$1" > "$WORK/cms.asn1" 2>/dev/null || die 1 "JOIN_RELEASE_INVALID: the KMS Recipient disk key is not DER"
  awk -v size="$size" '
    function num(re,   t) { if (!match(s, re)) return -1; t = substr(s, RSTART, RLENGTH); gsub(/[^0-9]/, "", t); return t + 0 }
    {
      s = $0; sub(/^ */, "", s); n++
      O[n] = s; sub(/:.*/, "", O[n]); O[n] += 0
      D[n] = num("d= *[0-9]+"); H[n] = num("hl= *[0-9]+"); L[n] = num(" l= *[0-9]+")
      if (!match(s, /(prim|cons): /)) { bad = "unparsed line"; exit }
      K[n] = substr(s, RSTART, 4); r = substr(s, RSTART + 6)
      T[n] = r; sub(/  .*$/, "", T[n]); sub(/ *$/, "", T[n]); sub(/:.*$/, "", T[n])
      V[n] = ""; if (index(r, ":")) { V[n] = substr(r, index(r, ":") + 1); sub(/ *$/, "", V[n]) }
      if (D[n] < 0 || H[n] < 0 || L[n] < 0) { bad = "indefinite length"; exit }
    }
    function kids(p,   j, c) { c = 0; for (j = p + 1; j <= n && D[j] > D[p]; j++) if (D[j] == D[p] + 1) C[++c] = j; return c }
    function want(i, d, t, v) { if (i > n || D[i] != d || T[i] != t || (v != "" && V[i] != v)) { bad = "unexpected " T[i] " at line " i; return 0 } return 1 }
    END {
      if (bad != "") { print "ERR " bad; exit 1 }
      if (n < 10 || H[1] + L[1] != size) { print "ERR length or trailing bytes"; exit 1 }
      if (!want(1, 0, "SEQUENCE", "") || !want(2, 1, "OBJECT", "pkcs7-envelopedData") || !want(3, 1, "cont [ 0 ]", "") || !want(4, 2, "SEQUENCE", "")) { print "ERR " bad; exit 1 }
      if (kids(4) != 3) { print "ERR EnvelopedData has other than version, recipientInfos, encryptedContentInfo"; exit 1 }
      ver = C[1]; ris = C[2]; eci = C[3]
      if (!want(ver, 3, "INTEGER", "") || !want(ris, 3, "SET", "") || !want(eci, 3, "SEQUENCE", "")) { print "ERR " bad; exit 1 }
      if (kids(ris) != 1) { print "ERR not exactly one recipient"; exit 1 }
      ktri = C[1]
      if (!want(ktri, 4, "SEQUENCE", "") || kids(ktri) != 4) { print "ERR not a KeyTransRecipientInfo"; exit 1 }
      alg = C[3]; ek = C[4]
      if (!want(alg, 5, "SEQUENCE", "") || !want(ek, 5, "OCTET STRING", "") || K[ek] != "prim") { print "ERR " bad; exit 1 }
      oids = ""; for (j = alg + 1; j < ek; j++) if (T[j] == "OBJECT") oids = oids V[j] ","
      if (oids != "rsaesOaep,sha256,mgf1,sha256,") { print "ERR key transport is not RSAES-OAEP-SHA-256 (" oids ")"; exit 1 }
      if (kids(eci) != 3) { print "ERR EncryptedContentInfo shape"; exit 1 }
      ct = C[3]; calg = C[2]
      if (!want(C[1], 4, "OBJECT", "pkcs7-data") || !want(calg, 4, "SEQUENCE", "") || !want(ct, 4, "cont [ 0 ]", "")) { print "ERR " bad; exit 1 }
      if (kids(calg) != 2 || !want(C[1], 5, "OBJECT", "aes-256-cbc") || !want(C[2], 5, "OCTET STRING", "") || L[C[2]] != 16) { print "ERR content is not AES-256-CBC with a 16-byte IV"; exit 1 }
      print "IV " O[C[2]] + H[C[2]] " " L[C[2]]
      print "EK " O[ek] + H[ek] " " L[ek]
      if (K[ct] == "prim") print "CT " O[ct] + H[ct] " " L[ct]
      else { m = kids(ct); if (m < 1) { print "ERR empty content"; exit 1 }
        for (j = 1; j <= m; j++) { if (T[C[j]] != "OCTET STRING" || K[C[j]] != "prim") { print "ERR content chunk"; exit 1 } print "CT " O[C[j]] + H[C[j]] " " L[C[j]] } }
    }' "$WORK/cms.asn1" > "$WORK/cms.parts" || die 1 "JOIN_RELEASE_INVALID: the KMS Recipient disk key is not CMS EnvelopedData this client opens: $(sed -n 's/^ERR //p' "$WORK/cms.parts" | head -n1)"
  : > "$WORK/cms.ct"
  while read -r what off len; do
    case $what in
      IV) slice "$1" "$off" "$len" "$WORK/cms.iv" ;;
      EK) slice "$1" "$off" "$len" "$WORK/cms.ek" ;;
      CT) slice "$1" "$off" "$len" "$WORK/cms.chunk"; cat "$WORK/cms.chunk" >> "$WORK/cms.ct" ;;
    esac
  done < "$WORK/cms.parts"
  tpm_oaep_decrypt "$2" "$WORK/cms.ek" "$WORK/cms.cek" \
    || die 1 "JOIN_RELEASE_INVALID: the KMS Recipient disk key does not open with this node's TPM recipient key"
  [ "$(wc -c < "$WORK/cms.cek" | tr -d ' ')" = 32 ] || die 1 "JOIN_RELEASE_INVALID: the KMS Recipient content key is not 32 bytes"
  openssl enc -d -aes-256-cbc -K "$(hex_file "$WORK/cms.cek")" -iv "$(hex_file "$WORK/cms.iv")" -in "$WORK/cms.ct" -out "$3" 2>/dev/null \
    || die 1 "JOIN_RELEASE_INVALID: the KMS Recipient content does not decrypt"
  rm -f "$WORK/cms.cek" "$WORK/cms.ek" "$WORK/cms.ct" "$WORK/cms.chunk"
}

open_ephemeral_sealed() {
  jwe=$1
  printf '%s' "$jwe" | grep -Eq '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' \
    || die 1 "JOIN_RELEASE_INVALID: the sealed release is not a compact JWE with an encrypted key"
  H=${jwe%%.*}; rest=${jwe#*.}; EK=${rest%%.*}; rest=${rest#*.}; IV=${rest%%.*}; rest=${rest#*.}; CT=${rest%%.*}; TAG=${rest#*.}
  b64url_decode_to "$H" "$WORK/jwe.hdr" || die 1 "JOIN_RELEASE_INVALID: JWE header"
  for kv in alg=RSA-OAEP-256 enc=A128CBC-HS256 cty=application/attest-broker.release+json "kid=$(b64url_file "$WORK/eph.tp")"; do
    [ "$(json_str "$WORK/jwe.hdr" "${kv%%=*}")" = "${kv#*=}" ] || die 1 "JOIN_RELEASE_INVALID: not a release sealed to this attempt's key (${kv%%=*})"
  done
  b64url_decode_to "$EK" "$WORK/jwe.ek" || die 1 "JOIN_RELEASE_INVALID: JWE encrypted key"
  if [ -n "$KEY_IN_TPM" ]; then
    # The TPM unwraps with the key's own scheme (-s null: RSAES-OAEP, SHA-256, empty label).
    tpm_oaep_decrypt eph "$WORK/jwe.ek" "$WORK/jwe.cek" || die 1 "JOIN_RELEASE_INVALID: this attempt's TPM key cannot unwrap the content key"
  else
    openssl pkeyutl -decrypt -inkey "$WORK/eph.key" -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 \
      -in "$WORK/jwe.ek" -out "$WORK/jwe.cek" 2>/dev/null || die 1 "JOIN_RELEASE_INVALID: this attempt's key cannot unwrap the content key"
  fi
  [ "$(wc -c < "$WORK/jwe.cek" | tr -d ' ')" = 32 ] || die 1 "JOIN_RELEASE_INVALID: the content key is not 32 bytes"
  K=$(hex_file "$WORK/jwe.cek"); rm -f "$WORK/jwe.cek"
  open_cbc_hs256 "$K" "$H" "$IV" "$CT" "$TAG"; K=""
}

if grep -q '"release"[ ]*:[ ]*"' "$WORK/resp"; then
  if [ "$PLATFORM" = generic ]; then
    open_tpm_sealed "$(json_str "$WORK/resp" release)"
    log "release sealed to this TPM opened"
  else
    open_ephemeral_sealed "$(json_str "$WORK/resp" release)"
    log "release sealed to this attempt's ${KEY_IN_TPM:+TPM-resident }key opened"
  fi
else
  grep -q '"release"[ ]*:[ ]*{' "$WORK/resp" || die 1 "JOIN_RELEASE_INVALID: no release in the answer"
  # A node that sent a key never accepts the release in the clear (a stripped seal).
  [ "$PLATFORM" = generic ] || die 1 "JOIN_RELEASE_INVALID: the broker answered unsealed although this node sent a key to seal to"
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
  if grep -q '"diskKeyForRecipient"[ ]*:[ ]*{' "$WORK/resp"; then
    # KMS Recipient (AWS NitroTPM): CMS EnvelopedData to this attempt's recipient key,
    # RSAES-OAEP-SHA-256 / AES-256-CBC, opened with openssl cms.
    [ -f "$WORK/recipient.key" ] || [ -f "$WORK/recipient.ctx" ] || die 1 "JOIN_DISK_KEY_MISSING: the broker sent the disk key in the KMS Recipient form, but this client sent no recipient key (only AWS NitroTPM evidence carries one)"
    CFR=$(json_exact ciphertextForRecipient) || die 1 "JOIN_RELEASE_INVALID: diskKeyForRecipient.ciphertextForRecipient"
    CFR=${CFR%x}
    DW=$(json_exact wrapped) || die 1 "JOIN_RELEASE_INVALID: diskKeyForRecipient.wrapped"
    DW=${DW%x}
    if ! b64url_upto "$CFR" 16384 || ! b64url_upto "$DW" 8192; then
      die 1 "JOIN_RELEASE_INVALID: diskKeyForRecipient is not base64url"
    fi
    b64url_decode_to "$CFR" "$WORK/cfr.der" || die 1 "JOIN_RELEASE_INVALID: diskKeyForRecipient.ciphertextForRecipient"
    if [ -f "$WORK/recipient.ctx" ]; then
      cms_open_tpm "$WORK/cfr.der" recipient "$WORK/disk.key"
    else
      openssl cms -decrypt -inform DER -in "$WORK/cfr.der" -inkey "$WORK/recipient.key" -binary -out "$WORK/disk.key" 2>/dev/null \
        || die 1 "JOIN_RELEASE_INVALID: the KMS Recipient disk key does not open with this node's recipient key"
    fi
    rm -f "$WORK/recipient.key" "$WORK/cfr.der"
  else
    grep -q '"diskKey"[ ]*:[ ]*{' "$WORK/resp" || die 1 "JOIN_DISK_KEY_MISSING: the release carries no disk key (does the policy grant disk-key?)"
    DK=$(json_exact key) || die 1 "JOIN_RELEASE_INVALID: diskKey.key"
    DK=${DK%x}
    DW=$(json_exact wrapped) || die 1 "JOIN_RELEASE_INVALID: diskKey.wrapped"
    DW=${DW%x}
    if ! one_line "$DK" '^[A-Za-z0-9_-]{43}$' || ! b64url_upto "$DW" 8192; then
      die 1 "JOIN_RELEASE_INVALID: diskKey is not base64url (a 32-byte key)"
    fi
    b64url_decode_to "$DK" "$WORK/disk.key" || die 1 "JOIN_RELEASE_INVALID: diskKey.key"
    DK=""
  fi
  [ "$(wc -c < "$WORK/disk.key" | tr -d ' ')" = 32 ] || die 1 "JOIN_RELEASE_INVALID: the disk key is not 32 bytes"
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
