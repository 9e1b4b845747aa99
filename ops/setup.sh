#!/usr/bin/env bash
# Installs what the build, the tests and the benchmarks need on Debian, and
# does nothing when everything is already there. Safe to run again and again.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  librocksdb-dev librdkafka-dev libboost-dev libprotobuf-dev protobuf-compiler libssl-dev
  libgtest-dev libcli11-dev nlohmann-json3-dev libsimdjson-dev libcsv-dev libabsl-dev
  curl kcat wrk nginx-light
  clang libclang-rt-14-dev clang-format
  chromium nodejs npm
  libcairo2-dev libpango1.0-dev poppler-utils  # invoice PDFs, read back in tests
  fonts-dejavu-core fonts-ipafont-gothic fonts-wqy-microhei  # their fonts: Latin, Japanese, Chinese and Korean names
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# A machine may already have Node and npm from elsewhere (nvm, a tarball);
# only ask Debian for them when the commands are missing.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/nodejs}")
  missing=("${missing[@]/npm}")
fi
filtered=()
for p in "${missing[@]}"; do [ -n "$p" ] && filtered+=("$p"); done

if [ ${#filtered[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi

echo "setup: installing ${filtered[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${filtered[@]}"
