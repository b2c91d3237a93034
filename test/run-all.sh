#!/usr/bin/env bash
# The whole test suite, from a fresh Debian checkout: installs the system packages the tests
# drive (real redis-server, swtpm, tpm2-tools, …), installs npm dependencies, then runs
# type-checking, lint and every test (Node and workerd).
#
#   ./test/run-all.sh            # as root, or with sudo available
#
# Set ATTEST_SKIP_APT=1 to skip the apt step (packages already installed).
set -euo pipefail
cd "$(dirname "$0")/.."

# Every tool the suite drives (test/global-setup.ts fails the run when one is missing: no test
# is ever skipped for want of a tool).
APT_PACKAGES=(redis-server redis-tools swtpm swtpm-tools tpm2-tools openssl curl dash python3 systemd systemd-boot-efi binutils pesign osslsigncode cloud-init shellcheck cryptsetup-bin dmsetup mount util-linux)

if [[ "${ATTEST_SKIP_APT:-0}" != 1 ]]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  command -v kubectl >/dev/null || missing+=(kubernetes-client)
  if ((${#missing[@]})); then
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    echo "==> installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
    command -v kubectl >/dev/null || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
  fi
fi

node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error("Node >= 20.19 is required, found "+process.versions.node); process.exit(1) }'

echo "==> npm ci"
npm ci --no-audit --no-fund

echo "==> typecheck";  npm run -s typecheck
echo "==> lint";       npm run -s lint
echo "==> tests (node $(node --version))"
mkdir -p .cache
npx vitest run --reporter=default --reporter=json --outputFile.json=.cache/vitest-report.json
node scripts/test-summary.mjs .cache/vitest-report.json "node $(node --version)"
