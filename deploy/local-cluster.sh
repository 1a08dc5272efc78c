#!/usr/bin/env bash
# Starts a coordinator and N workers on this machine, on given ports, and keeps them running
# until Ctrl-C. Clients then run traces against it:
#   bash deploy/local-cluster.sh 2 5555 Models/tiny-license-gpt2 [METRICS_PORT]
#   .build/release/nnsight run Examples/seed/03_bounded_iteration.py --cluster tcp://127.0.0.1:5555 --model Models/tiny-license-gpt2
# Worker i takes activations on port BASE+1+i. Everything binds to 127.0.0.1 (no keys needed there;
# across hosts use --keys, see the README's "Security and faults"). Metrics: the coordinator's on
# http://127.0.0.1:METRICS/metrics (default 9100), worker i's on METRICS+1+i;
# `nnsight status --cluster tcp://127.0.0.1:BASE` shows the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-2}
port=${2:-5555}
model=${3:-Models/tiny-license-gpt2}
metrics=${4:-9100}
swift build -c release --product nnsight >/dev/null
swift build -c release --product nnsight-worker >/dev/null
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
.build/release/nnsight serve --model "$model" --listen "tcp://127.0.0.1:$port" --workers "$workers" --metrics "127.0.0.1:$metrics" &
pids+=($!)
cores=$(nproc)
for i in $(seq 0 $((workers - 1))); do
  .build/release/nnsight-worker --connect "tcp://127.0.0.1:$port" --bind "tcp://127.0.0.1:$((port + 1 + i))" \
    --model "$model" --id "worker-$i" --threads $(( cores / workers > 0 ? cores / workers : 1 )) --metrics "127.0.0.1:$((metrics + 1 + i))" &
  pids+=($!)
done
wait
