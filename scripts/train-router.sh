#!/usr/bin/env bash
# Trains the router's classifier on the corpus and writes the compiled-in model:
#   crates/marshal-core/src/router-model.bin   weights (BUCKETS x 4 labels, i16 little-endian)
#   crates/marshal-core/src/router_model.rs    scale and biases
# Same corpus and settings, same bytes. It trains on the train split only and prints its
# score on the dev split; the frozen test split is never read (see evals/README.md).
#
#   scripts/train-router.sh            train and write the model
#   scripts/train-router.sh --misses   also list the dev prompts it gets wrong
#   scripts/train-router.sh --dry-run  train and score, write nothing
set -euo pipefail
cd "$(dirname "$0")/.."

out=(--out crates/marshal-core/src)
extra=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) out=() ;;
    --misses) extra+=(--misses) ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "train-router.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

# Chosen on the dev split (2026-11-21): more epochs or more L2 did not help it.
cargo run --quiet --release --locked -p marshal --example train-router -- \
  --train evals/corpus-train.jsonl --check evals/corpus-dev.jsonl \
  --epochs 10 --l2 1e-4 --rate 0.1 "${out[@]}" "${extra[@]+"${extra[@]}"}"
