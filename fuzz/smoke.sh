#!/usr/bin/env bash
# Runs every fuzz target for N seconds each (default 20) on stable Rust
# (`-s none`: no sanitizer, so no nightly flags), seeded with the committed
# regression inputs. Exits non-zero on the first crash; the input is left in
# fuzz/artifacts/<target>/. Usage: fuzz/smoke.sh [seconds]
set -euo pipefail
secs="${1:-20}"
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=(idx idx_gz npy safetensors json config model)
cargo fuzz build -s none
for t in "${targets[@]}"; do
    echo "== fuzz $t for ${secs}s"
    mkdir -p "corpus/$t"
    # -rss_limit_mb: a parser that allocates far beyond its input fails here.
    cargo fuzz run -s none "$t" "corpus/$t" "regressions/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1
done
