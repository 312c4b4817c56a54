#!/usr/bin/env bash
# Trains every preset on MNIST and prints the results table of the README:
# test loss and reconstruction loss, L0 (with its threshold when not 0), dead
# code units, the spread of ρ̂ for KL codes and time per epoch.
# Usage: [PRESETS="a b"] benches/presets.sh [DATA_DIR] [EPOCHS]   (default ../shared/datasets/mnist, 5)
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/datasets/mnist}"
epochs="${2:-5}"
cargo build --release --quiet
bin=target/release/sparse-ae
out=$(mktemp -d)
echo "MNIST, $epochs epochs, Adam lr 1e-3, seed 0; $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| preset | batch | test loss | test recon | L0 | dead code units | ρ̂ median [min, max], off target | s/epoch |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for p in ${PRESETS:-shallow deep denoising sparse-l1 sparse-kl overcomplete-kl conv conv-kl topk}; do
    batch=128
    case "$p" in conv*) batch=64 ;; esac
    "$bin" train --preset "$p" --data "$data" --epochs "$epochs" --batch-size "$batch" \
        -o "$out/$p.safetensors" --metrics "$out/$p.jsonl" -q
    python3 - "$out/$p.jsonl" "$p" "$batch" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
last = rows[-1]
secs = sum(r["seconds"] for r in rows) / len(rows)
t = last["test"]
r = last.get("rho_hat")
rho = "—" if r is None else f"{r['median']:.4f} [{r['min']:.4f}, {r['max']:.4f}], {r['off_target']} / {r['groups']}"
tau = last.get("active_threshold", 0)
l0 = f"{last['l0']:.1f}" + ("" if not tau else f" (h > {tau:g})")
print(f"| `{sys.argv[2]}` | {sys.argv[3]} | {t['loss']:.4f} | {t['recon']:.4f} | {l0} | {last['dead_units']} / {last['code_units']} | {rho} | {secs:.2f} |")
PY
done
rm -rf "$out"
