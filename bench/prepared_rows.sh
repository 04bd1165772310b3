#!/usr/bin/env bash
# The compressed LeNets' rows of `bench/device.sh --json` alone, in place and prepared (Model::prepare_int8 at
# start-up: run.sh --prepare), on the Cortex-M3, M4F and M7 boards: one JSON object per row, without rebuilding the
# peers (CMSIS-NN and TFLM rows come from the full device.sh --json run).
#   bash bench/prepared_rows.sh > rows.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
mlp=runtime/embedded/models/lenet-300-100.slim cnn=runtime/embedded/models/lenet-5.slim
# device.sh's helpers (cycles, slimnet_row), without its top-level commands.
source <(sed -n '/^fixtures=/,/^json_rows()/p' bench/device.sh | head -n -1)
slimnet_row lenet-300-100 "sparse, Huffman (default)" $mlp
slimnet_row lenet-5 "sparse, Huffman (default)" $cnn
PREPARE=1 slimnet_row lenet-300-100 "sparse, Huffman (default), prepared" $mlp
PREPARE=1 slimnet_row lenet-5 "sparse, Huffman (default), prepared" $cnn
