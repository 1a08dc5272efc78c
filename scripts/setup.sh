#!/usr/bin/env bash
# Installs what the build needs on a fresh Debian 12 machine with the Swift toolchain (as root).
set -euo pipefail
packages=(libzmq3-dev libopenblas-dev pkg-config iproute2)  # iproute2: the network-namespace fault tests (ip netns, tc netem)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
command -v swift >/dev/null || { echo "setup: no Swift toolchain on PATH" >&2; exit 1; }
