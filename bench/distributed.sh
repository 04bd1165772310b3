#!/usr/bin/env bash
# Distributed training on the full MNIST training split (LeNet-300-100), for BENCHMARKS.md:
#  1. accuracy against bytes sent: master-worker (6 workers) against decentralized two-star / complete, with and
#     without compressed messages (threads in one process: the same algorithm code as MPI);
#  2. time per epoch and where it goes: single node, 6 nodes on threads, 6 MPI ranks, side by side.
# Needs a release build with MPI: cargo build --release --features mpi. Results: target/bench-distributed/.
set -euo pipefail
cd "$(dirname "$0")/.."
B=./target/release/slimnet
OUT=target/bench-distributed
mkdir -p "$OUT"
EPOCHS=${EPOCHS:-20}
common=(--epochs "$EPOCHS" -q)
run() { # name, flags…
  local name=$1; shift
  echo "== $name: $*"
  "$B" train "${common[@]}" "$@" --out "$OUT/$name.safetensors" --metrics "$OUT/$name.json"
}
if [ "${PART:-all}" != timing ]; then
  run mw-none --distributed master-worker --nodes 7
  run dec-none --distributed decentralized --topology two-star
  run dec-topk5-g02 --distributed decentralized --topology two-star --message-compression top-k-int8:0.05 --consensus-step 0.2
  run dec-topk10-g03 --distributed decentralized --topology two-star --message-compression top-k-int8:0.1 --consensus-step 0.3
  run complete-topk5-g02 --distributed decentralized --topology complete --nodes 6 --message-compression top-k-int8:0.05 --consensus-step 0.2
  run mw-topk5 --distributed master-worker --nodes 7 --message-compression top-k-int8:0.05
fi
if [ "${PART:-all}" != accuracy ]; then
  T=(--epochs 2 -q --select last)
  echo "== timing: single node"
  "$B" train "${T[@]}" --out "$OUT/t-single.safetensors" --metrics "$OUT/t-single.json"
  echo "== timing: master-worker, 6 nodes on threads"
  "$B" train "${T[@]}" --distributed master-worker --nodes 6 --out "$OUT/t-threads.safetensors" --metrics "$OUT/t-threads.json"
  echo "== timing: master-worker, 6 MPI ranks"
  mpirun --allow-run-as-root --oversubscribe -n 6 "$B" train "${T[@]}" --distributed master-worker \
    --out "$OUT/t-mpi.safetensors" --metrics "$OUT/t-mpi.json"
fi
