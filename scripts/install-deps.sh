#!/usr/bin/env bash
# Installs the Debian packages needed to build, test and benchmark libflink.
#
# Quiet when everything is present, so `make` can call it on every run. As root it
# installs what is missing; otherwise it prints the command to run and fails, because a
# build that goes on without its dependencies only fails later with a worse message.
#
# FL_SKIP_DEPS=1 skips the check (e.g. on a non-Debian system with the libraries
# installed some other way).
set -euo pipefail

# prometheus and chromium are for tests only: one scrapes the HTTP endpoint with a real
# Prometheus, one loads the dashboard in headless Chromium.
#
# The sanitizer runtimes (libasan8, libubsan1, libtsan2) are separate packages in
# Debian 12; gcc-12 pulls them in through libgcc-12-dev, but they are listed so that a
# trimmed image without them is repaired too.
packages=(
  build-essential
  cmake
  pkg-config
  librdkafka-dev
  librocksdb-dev
  libjansson-dev
  libcurl4-openssl-dev
  libcmocka-dev
  libmicrohttpd-dev
  kcat
  prometheus
  chromium
  clang-format
  libasan8
  libubsan1
  libtsan2
)

if [[ "${FL_SKIP_DEPS:-0}" == 1 ]]; then
  exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: dpkg-query not found (not Debian?); make sure these are installed:" >&2
  echo "  ${packages[*]}" >&2
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  # Status is "install ok installed" only for a fully installed package; removed but
  # not purged packages ("deinstall ok config-files") count as missing.
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
