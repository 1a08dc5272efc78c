#!/usr/bin/env bash
# The deploy check tested on itself: the files as committed pass, and a copy with one broken
# manifest, one bad container instruction or one bad unit setting fails, naming that file.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/check.sh"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

expect_failure() {  # NAME FILE: check.sh on $scratch/copy must fail and name FILE
  local out
  if out=$(bash "$here/check.sh" "$scratch/copy" 2>&1); then
    echo "check-test: $1: the check passed a broken $2" >&2; exit 1
  fi
  grep -q "deploy check: .*$2" <<<"$out" || { echo "check-test: $1: the failure does not name $2:"$'\n'"$out" >&2; exit 1; }
  echo "check-test: $1: refused, naming $2"
}
fresh() { rm -rf "$scratch/copy"; cp -r "$here" "$scratch/copy"; }

fresh
sed -i '0,/containerPort: 5555/s//containerPort: "five thousand"/' "$scratch/copy/k8s/coordinator.yaml"
expect_failure "a port that is not a number" "k8s/coordinator.yaml"

fresh
sed -i 's/^  replicas: 4$/  replicas: 4\n  replica: 4/' "$scratch/copy/k8s/workers.yaml"
expect_failure "an unknown field (strict)" "k8s/workers.yaml"

fresh
printf 'RUN apt-get install curl\n' >> "$scratch/copy/Containerfile"
expect_failure "apt-get without -y and --no-install-recommends" "Containerfile"

fresh
sed -i 's/^Restart=on-failure$/Restart=sometimes/' "$scratch/copy/systemd/nnsight-coordinator.service"
expect_failure "a Restart= value systemd does not know" "systemd/nnsight-coordinator.service"

fresh
sed -i 's/^MemoryMax=4G$/MemoryMaximum=4G/' "$scratch/copy/systemd/nnsight-worker@.service"
expect_failure "an unknown unit setting" "systemd/nnsight-worker@.service"
echo "check-test: the deploy check passes the committed files and refuses each broken copy"
