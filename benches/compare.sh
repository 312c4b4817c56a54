#!/usr/bin/env bash
# sparse-ae against PyTorch, JAX and Keras on the seed workloads W1–W6, and against PyTorch on
# W7 (the 768 → 16384 TopK SAE at batch 1024, torch_topk.py), measured side by side.
#
# sparse-ae: `cargo bench --bench train_step` (criterion, bencher format: ns/iter → samples/s
# = batch · 1e9 / ns), one run per repeat, median over the repeats. Peers: the scripts of
# the peer bench folder (`<script> bench Wn [option]`, each already a median of 3 clean
# repeats). Per workload the sparse-ae repeats bracket the peer runs, so both are measured in
# the same sitting. Without a peer environment the README's reference figures are shown,
# labelled as such.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: benches/compare.sh [options]

  --peers PYTHON         python of the peer environment (default: $PEERS_PY; none: reference figures)
  --peers-dir DIR        peer scripts (default: $PEERS_DIR or ../shared/bench next to the crate)
  --data DIR             Fashion-MNIST IDX folder (default: $ANCHORS_DATA or /usr/share/datasets/fashion-mnist)
  --workloads LIST       comma-separated subset of W1,W2,W3,W4,W5,W6,W7 (default: all)
  --repeats N            sparse-ae runs per workload, bracketing the peer runs (default: 3)
  --peer-repeats N       runs of each peer variant per workload (default: 1; each is a median of 3 itself)
  --frameworks LIST      comma-separated subset of torch,jax,keras (default: all)
  --variants best|base|all
                         best: each framework's options that won somewhere in the README (torch
                         --compile on W1/W4, jax --scan on W1–W5, keras --jit on W1/W2; default);
                         base: eager torch, jitted JAX, eager Keras only; all: every option everywhere.
                         W7 runs PyTorch only, with both of torch_topk.py's decoders (embedding_bag
                         and --dense) whatever this says
  --measure SECS         criterion measurement time per sparse-ae run (default: 3; warm-up 1 s)
  --peer-max-repeats N   cap of repeats inside a peer script when the machine is noisy (default: 5)
  --peer-timeout SECS    kill a peer run after this long (default: 900)
  --no-epoch             skip the W1 one-epoch comparison
  --isa avx2             an AVX2-only machine on an AVX-512 one: sparse-ae on its AVX2 path
                         (SPARSE_AE_KERNEL=avx2) and every peer capped at AVX2 (XLA_FLAGS
                         --xla_cpu_max_isa=AVX2, ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2,
                         ONEDNN_MAX_CPU_ISA=AVX2, OPENBLAS_CORETYPE=Haswell), as on an AMD Zen 3;
                         the report says so (default: each picks its best path for this CPU).
                         The caps are what the frameworks offer; not every kernel obeys them
                         (JAX's dots on an AMD Zen 5 ran as fast capped as not, above the AVX2
                         FMA peak: docs/benchmarks.md), so check a peer's GFLOP/s against that peak
  --out DIR              keep logs and results here (default: a new /tmp/sparse-ae-compare.XXXX)
  -h, --help             this text
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPER="$ROOT/benches/compare_parse.py"
PY=${PEERS_PY:-}
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/bench}
DATA=${ANCHORS_DATA:-/usr/share/datasets/fashion-mnist}
WORKLOADS=W1,W2,W3,W4,W5,W6,W7
REPEATS=3
PEER_REPEATS=1
FRAMEWORKS=torch,jax,keras
VARIANTS=best
MEASURE=3
PEER_MAX_REPEATS=5
PEER_TIMEOUT=900
EPOCH=1
ISA=""
OUT=""
COMMAND="$0 $*"

while (($#)); do
    case $1 in
        --peers) PY=$2; shift ;;
        --peers-dir) PEERS_DIR=$2; shift ;;
        --data) DATA=$2; shift ;;
        --workloads) WORKLOADS=$2; shift ;;
        --repeats) REPEATS=$2; shift ;;
        --peer-repeats) PEER_REPEATS=$2; shift ;;
        --frameworks) FRAMEWORKS=$2; shift ;;
        --variants) VARIANTS=$2; shift ;;
        --measure) MEASURE=$2; shift ;;
        --peer-max-repeats) PEER_MAX_REPEATS=$2; shift ;;
        --peer-timeout) PEER_TIMEOUT=$2; shift ;;
        --no-epoch) EPOCH=0 ;;
        --isa) ISA=$2; shift ;;
        --out) OUT=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "compare.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

die() { echo "compare.sh: $*" >&2; exit 2; }
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || die "--repeats wants a positive integer"
[[ $PEER_REPEATS =~ ^[1-9][0-9]*$ ]] || die "--peer-repeats wants a positive integer"
[[ $VARIANTS =~ ^(best|base|all)$ ]] || die "--variants is best, base or all"
[[ -z $ISA || $ISA == avx2 ]] || die "--isa takes avx2 (or leave it out)"
if [[ $ISA == avx2 ]]; then
    grep -qw avx2 /proc/cpuinfo || die "--isa avx2: this CPU has no AVX2"
    export SPARSE_AE_KERNEL=avx2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell
    export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_cpu_max_isa=AVX2"
fi
IFS=, read -r -a WLS <<<"$WORKLOADS"
IFS=, read -r -a FWS <<<"$FRAMEWORKS"
for wl in "${WLS[@]}"; do [[ $wl =~ ^W[1-7]$ ]] || die "unknown workload $wl"; done
for fw in "${FWS[@]}"; do [[ $fw =~ ^(torch|jax|keras)$ ]] || die "unknown framework $fw"; done
PEERS_DIR=$(cd "$PEERS_DIR" 2>/dev/null && pwd || echo "$PEERS_DIR")
if [[ -n $PY ]]; then
    [[ -x $PY ]] || die "peer python $PY is not executable"
    [[ -f $PEERS_DIR/torch_seed.py ]] || die "no peer scripts in $PEERS_DIR"
fi
[[ -d $DATA ]] || die "no data folder $DATA (apt-get install -y dataset-fashion-mnist, or --data DIR)"
command -v python3 >/dev/null || die "python3 is needed for benches/compare_parse.py"

declare -A CRIT=([W1]=W1_deep_b32 [W2]=W2_deep_b256 [W3]=W3_shallow_l1_b32
    [W4]=W4_overcomplete_kl_b256 [W5]=W5_denoising_b32 [W6]=W6_conv_b64)
CRIT_W7=topk_768x16384/sparse_b1024
declare -A BATCH=([W1]=32 [W2]=256 [W3]=32 [W4]=256 [W5]=32 [W6]=64 [W7]=1024)
declare -A SCRIPT=([torch]=torch_seed.py [jax]=jax_seed.py [keras]=keras_seed.py)
declare -A FLAG=([eager]="" [compile]=--compile [jit]="" [scan]=--scan [xla]=--jit [embedding_bag]="" [dense]=--dense)
declare -A BASE=([torch]=eager [jax]=jit [keras]=eager)

[[ -n $OUT ]] || OUT=$(mktemp -d /tmp/sparse-ae-compare.XXXX)
mkdir -p "$OUT"
TSV=$OUT/results.tsv
: >"$TSV"
export ANCHORS_DATA=$DATA ANCHORS_MAX_REPEATS=$PEER_MAX_REPEATS
cd "$ROOT"

say() { echo "[compare $(date +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)] $*" >&2; }

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "building (release binary and the train_step bench); logs in $OUT"
cargo build --release --quiet
cargo bench --bench train_step --no-run --quiet 2>"$OUT/bench-build.log"
# The TopK group registers only when a filter names it.
LISTED=$({ cargo bench --quiet --bench train_step -- --list; cargo bench --quiet --bench train_step -- --list topk; } 2>/dev/null)

# Variants of framework $1 to run on workload $2.
variants() {
    local fw=$1 wl=$2
    if [[ $wl == W7 ]]; then
        [[ $fw == torch ]] && echo embedding_bag dense
        return 0
    fi
    case $VARIANTS in
        base) echo "${BASE[$fw]}" ;;
        all) case $fw in torch) echo eager compile ;; jax) echo jit scan ;; keras) echo eager xla ;; esac ;;
        best)
            echo "${BASE[$fw]}"
            case $fw:$wl in torch:W1 | torch:W4 | jax:W[1-5] | keras:W1 | keras:W2)
                case $fw in torch) echo compile ;; jax) echo scan ;; keras) echo xla ;; esac ;;
            esac ;;
    esac
}

# One timed run: $1 log, rest the command; echoes "foreign wall", never fails the script.
timed() {
    local log=$1
    shift
    python3 "$HELPER" timed "$log" --timeout "$PEER_TIMEOUT" -- "$@" || true
}

# How long a value takes between two threads and back now, in ns (`sparse-ae
# info`), recorded before every timed run: 49–145 ns while a VM's two vCPUs
# sit close, 320 ns and more while they sit far apart, where two-thread
# batch-32 steps (ours and the peers') run ~30 % slower.
round_trip_ns() {
    target/release/sparse-ae info 2>/dev/null | sed -n 's/^round trip between two threads: \([0-9]*\) ns.*/\1/p'
}

sa_bench() {
    local wl=$1 r=$2 id log fr rt
    if [[ $wl == W7 ]]; then id=$CRIT_W7; else id=train_step/${CRIT[$wl]}; fi
    if ! grep -qx "$id: benchmark" <<<"$LISTED"; then
        ((r > 0)) || say "$id is not in the train_step bench; skipped"
        return 0
    fi
    log=$OUT/sparse-ae_bench_${wl}_$r.log
    rt=$(round_trip_ns)
    fr=$(timed "$log" cargo bench --quiet --bench train_step -- --output-format bencher --noplot \
        --warm-up-time 1 --measurement-time "$MEASURE" --sample-size 20 --exact "$id")
    say "$(ROUND_TRIP_NS=$rt python3 "$HELPER" record "$TSV" bench "$wl" sparse-ae criterion bencher "$log" "${fr% *}" "${BATCH[$wl]}")"
}

sa_epoch() {
    local log=$OUT/sparse-ae_epoch_W1_$2.log fr rt
    rt=$(round_trip_ns)
    fr=$(timed "$log" target/release/sparse-ae train --preset deep --data "$DATA" --epochs 1 \
        --batch-size 32 -o "$OUT/w1.safetensors")
    say "$(ROUND_TRIP_NS=$rt python3 "$HELPER" record "$TSV" epoch W1 sparse-ae cli cli "$log" "${fr% *}")"
}

# peer KIND WL FW:VARIANT:N
peer() {
    local kind=$1 wl=$2 fw var n log fr rt
    IFS=: read -r fw var n <<<"$3"
    log=$OUT/${fw}-${var}_${kind}_${wl}_$n.log
    rt=$(round_trip_ns)
    if [[ $wl == W7 ]]; then
        # shellcheck disable=SC2086 # FLAG is empty or one word
        fr=$(timed "$log" "$PY" "$PEERS_DIR/torch_topk.py" "$kind" ${FLAG[$var]})
    else
        # shellcheck disable=SC2086 # FLAG is empty or one word
        fr=$(timed "$log" "$PY" "$PEERS_DIR/${SCRIPT[$fw]}" "$kind" "$wl" ${FLAG[$var]})
    fi
    say "$(ROUND_TRIP_NS=$rt python3 "$HELPER" record "$TSV" "$kind" "$wl" "$fw" "$var" peer "$log" "${fr% *}")"
}

# interleave SA_FN KIND WL PEER_TASK...: REPEATS runs of SA_FN with the peer tasks split between them.
interleave() {
    local fn=$1 kind=$2 wl=$3
    shift 3
    local tasks=("$@") n=$# r i lo hi
    for ((r = 0; r < REPEATS; r++)); do
        "$fn" "$wl" "$r"
        if ((REPEATS == 1)); then
            lo=0 hi=$n
        elif ((r < REPEATS - 1)); then
            lo=$((r * n / (REPEATS - 1))) hi=$(((r + 1) * n / (REPEATS - 1)))
        else
            continue
        fi
        for ((i = lo; i < hi; i++)); do peer "$kind" "$wl" "${tasks[i]}"; done
    done
}

for wl in "${WLS[@]}"; do
    tasks=()
    if [[ -n $PY ]]; then
        for ((n = 0; n < PEER_REPEATS; n++)); do
            for fw in "${FWS[@]}"; do
                for var in $(variants "$fw" "$wl"); do tasks+=("$fw:$var:$n"); done
            done
        done
    fi
    interleave sa_bench bench "$wl" ${tasks[@]+"${tasks[@]}"}
done

if ((EPOCH)); then
    tasks=()
    if [[ -n $PY ]]; then
        for ((n = 0; n < PEER_REPEATS; n++)); do
            for fw in "${FWS[@]}"; do tasks+=("$fw:${BASE[$fw]}:$n"); done
        done
    fi
    interleave sa_epoch epoch W1 ${tasks[@]+"${tasks[@]}"}
fi

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
CPU=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
SA="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $(rustc --version), criterion warm-up 1 s, measure ${MEASURE} s, ${REPEATS} runs (median)"
if [[ -n $PY ]]; then
    PEERS="$("$PY" -c 'import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ["torch", "jax", "optax", "tensorflow-cpu", "keras"]))' 2>/dev/null || echo '?'); scripts in $PEERS_DIR, ${PEER_REPEATS} run(s) per variant, same sitting"
    REF=()
else
    PEERS="none given (--peers / PEERS_PY): reference figures from $PEERS_DIR/README.md"
    REF=(--reference)
fi
python3 "$HELPER" table "$TSV" ${REF[@]+"${REF[@]}"} "workloads=$WORKLOADS" "date=$(date '+%Y-%m-%d %H:%M %Z')" \
    "cpu=$CPU ($(nproc) cores)${ISA:+, every framework asked to cap at AVX2 (--isa avx2; not every kernel obeys)}" "load_start=$LOAD_START (1/5/15 min)" "load_end=$LOAD_END" \
    "command=$COMMAND" "sparse_ae=$SA" "peers=$PEERS" "epoch=$EPOCH" | tee "$OUT/report.md"
say "report: $OUT/report.md"
