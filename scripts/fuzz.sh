#!/usr/bin/env bash
# Runs the property tests (crates/marshal-core/tests/properties.rs: event parser, ledger reader,
# report reader, router) with many more cases than the test suite's 256. Usage:
#   scripts/fuzz.sh [CASES]      (default 20000; the suite's own run is bounded)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PROPTEST_CASES="${1:-20000}" cargo test --release --locked -p marshal-core --test properties
