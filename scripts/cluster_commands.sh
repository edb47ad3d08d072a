#!/usr/bin/env bash
# The commands of docs/CLUSTER.md, run on this one machine (two "nodes" as two process groups).
# Usage: bash scripts/cluster_commands.sh [WORKDIR]     (needs torchrun and ray on PATH: the venv)
# Each step prints "ok: <step>" when its command finished and wrote what the docs say it writes.
set -euo pipefail
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK"
export OMP_NUM_THREADS=1 TQDM_DISABLE=1 RAY_AUTH_MODE=disabled
CONFIG=$WORK/tiny.yaml
cat > "$CONFIG" <<YAML
name: tiny
benchmark: {name: multimnist, options: {train_size: 1024, test_size: 256}}
model: {family: mlp, width: 0.5, depth: 2}
method: {name: pcgrad}
optimizer: {name: adam, lr: 0.001}
epochs: 2
batch_size: 64
stl: false
device: cpu
YAML
check() { test -s "$1/scalarize.db" && test -f "$1/runs/tiny/model.pt" && echo "ok: $2"; }

# 1. N processes on one machine
scalarize train "$CONFIG" --nproc 2 -q output="$WORK/nproc"
check "$WORK/nproc" "scalarize train --nproc 2"

# 2. torchrun on one machine
torchrun --standalone --nproc-per-node 2 -m scalarize train "$CONFIG" -q output="$WORK/standalone"
check "$WORK/standalone" "torchrun --standalone"

# 3. torchrun on two nodes (as SLURM's srun starts it: one torchrun per node, same rendezvous)
for node in 0 1; do
  torchrun --nnodes 2 --nproc-per-node 1 --node-rank $node --master-addr 127.0.0.1 --master-port 29533 \
    -m scalarize train "$CONFIG" -q output="$WORK/two-nodes" &
done
wait
check "$WORK/two-nodes" "torchrun on two nodes"

# 4. a population on a two-node Ray cluster (ray start --head, a second node joins)
ray start --head --port 6390 --num-cpus 1 --include-dashboard false --disable-usage-stats >/dev/null
trap 'ray stop --force >/dev/null 2>&1 || true' EXIT
ray start --address 127.0.0.1:6390 --num-cpus 1 >/dev/null
scalarize pbt "$CONFIG" --backend ray --address 127.0.0.1:6390 --storage "$WORK/shared/ray" -q \
  output="$WORK/ray" method.name=scalarization pbt.population=4
test -f "$WORK/ray/pbt_result.json" && echo "ok: scalarize pbt --backend ray --address"
