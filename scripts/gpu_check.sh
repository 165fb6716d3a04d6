#!/usr/bin/env bash
# The renderer's GPU check as one command, on a CUDA machine without network, from the repo root:
#
#   bash scripts/gpu_check.sh             # ~6 min on one H200; the report: $OUT/gpu_check.md
#   bash scripts/gpu_check.sh --tiny      # the same steps at toy sizes on the CPU (a smoke test, ~2 min)
#
# It installs nothing. It needs torch (CUDA build), lightning, torchmetrics, numpy, opencv, and the pack
# that `python scripts/pack_gpu_check.py --speaker-root outputs/data/cnn2` writes to .gpu_check/ on a
# networked machine (hydra-core/omegaconf/antlr4 as plain files, and a 660-frame cut of cnn2, ~42 MiB),
# carried with the working tree. Steps (scripts/gpu_check.py): bench_nerf.py on the device for every
# path; `geneface.train stage=radnerf` on the cut for --train-minutes (default 3) at the stage's full
# size; render and score --eval-frames val frames. OUT defaults to outputs/gpu_check.
set -euo pipefail
cd "$(dirname "$0")/.."
export GENEFACE_GPU_CHECK_PACK="${GENEFACE_GPU_CHECK_PACK:-.gpu_check}"
if [ ! -d "$GENEFACE_GPU_CHECK_PACK/deps" ] || [ ! -d "$GENEFACE_GPU_CHECK_PACK/data" ]; then
    echo "gpu_check: no pack at $GENEFACE_GPU_CHECK_PACK; make it on a networked machine with" >&2
    echo "  python scripts/pack_gpu_check.py --speaker-root outputs/data/cnn2   (then carry .gpu_check)" >&2
    exit 2
fi
export PYTHONPATH="$GENEFACE_GPU_CHECK_PACK/deps:$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" scripts/gpu_check.py --out "${OUT:-outputs/gpu_check}" "$@"
