#!/usr/bin/env bash
# Trains the router's classifier on the corpus and writes the compiled-in model:
#   crates/marshal-core/src/router-model.bin   weights (BUCKETS x 4 labels, i8)
#   crates/marshal-core/src/router_model.rs    scale and biases
# Same corpus and settings, same bytes. It trains on the train split and prints its score on
# the dev split, which is how settings are chosen; then the model it writes is trained, with
# those settings, on train and dev together. The frozen test split is never read (see
# evals/README.md).
#
#   scripts/train-router.sh            score on dev, then train on train+dev and write the model
#   scripts/train-router.sh --misses   also list the dev prompts it gets wrong
#   scripts/train-router.sh --dry-run  train on train and score on dev, write nothing
set -euo pipefail
cd "$(dirname "$0")/.."

out=(--out crates/marshal-core/src)
extra=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) out=() ;;
    --misses) extra+=(--misses) ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "train-router.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

settings=(--epochs 10 --l2 1e-4 --rate 0.1)
# Chosen on the dev split (2026-11-21): more epochs, more L2, bagging or input dropout did not help.
cargo run --quiet --release --locked -p marshal --example train-router -- \
  --train evals/corpus-train.jsonl --check evals/corpus-dev.jsonl \
  "${settings[@]}" "${extra[@]+"${extra[@]}"}"
if [ ${#out[@]} -gt 0 ]; then
  echo "writing the model trained on train and dev:"
  cargo run --quiet --release --locked -p marshal --example train-router -- \
    --train evals/corpus-train.jsonl --train evals/corpus-dev.jsonl "${settings[@]}" "${out[@]}"
fi
