#!/usr/bin/env bash
# The varied phantom family's headroom gate (docs/phantom.md) at the paper's width, for a machine
# with a GPU: V-Net with 4 labeled cases against the same V-Net with all 16 labeled, n_filters 16,
# 3 seeds, at budget x4 (1,000 iterations) and x16 (4,000). About 5 minutes on one H100/H200
# (six runs side by side); each call prints the gate's verdict as its last line.
# Usage, from the repository root with the virtual environment set up:
#   bash benchmarks/varied_gate_gpu.sh OUT
set -euo pipefail
out=${1:?usage: bash benchmarks/varied_gate_gpu.sh OUT}
for budget in 4 16; do
    .venv/bin/dcaseg ablate "$out/nf16-x$budget" --family varied --variants vnet-labeled vnet-full \
        --budget "$budget" --n-filters 16 --seeds 3 --device cuda --jobs 6
done
