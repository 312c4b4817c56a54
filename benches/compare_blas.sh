#!/usr/bin/env bash
# sparse-ae's GEMM against numpy's BLAS (OpenBLAS in the peer environment) on
# every shape of `cargo bench --bench gemm`, both timed as the best of N calls
# (after 50 ms of untimed ones) in one sitting, on 1 and 2 threads, with the
# CPU and the FMA peak.
#
# usage: benches/compare_blas.sh [--peers PYTHON] [--best-of N] [--isa avx2] [--out DIR]
#   --peers    python with numpy and threadpoolctl (default: $PEERS_PY, else /tmp/peers/bin/python)
#   --best-of  calls per shape (default: 30)
#   --isa avx2 an AVX2-only CPU on an AVX-512 one: sparse-ae's paths capped at
#              AVX2 (SPARSE_AE_MAX_ISA=avx2), OpenBLAS on its Haswell kernel
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for the numpy run only, so
# OpenBLAS picks its own kernel for this CPU (the report names it), unless
# --isa avx2 sets OPENBLAS_CORETYPE=Haswell.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PEERS_PY:-/tmp/peers/bin/python}
ARGS="$*"
N=30
ISA=""
OUT=""
while (($#)); do
    case $1 in
        --peers) PY=$2; shift ;;
        --best-of) N=$2; shift ;;
        --isa) ISA=$2; shift ;;
        --out) OUT=$2; shift ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "compare_blas.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "compare_blas.sh: --best-of wants a positive integer" >&2; exit 2; }
[[ -z $ISA || $ISA == avx2 ]] || { echo "compare_blas.sh: --isa takes avx2 (or leave it out)" >&2; exit 2; }
BLAS_ENV=(-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
if [[ $ISA == avx2 ]]; then
    export SPARSE_AE_MAX_ISA=avx2
    BLAS_ENV=(-u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell)
fi
[[ -x $PY ]] || { echo "compare_blas.sh: no python at $PY (python3 -m venv /tmp/peers && /tmp/peers/bin/pip install numpy threadpoolctl)" >&2; exit 2; }
[[ -n $OUT ]] || OUT=$(mktemp -d /tmp/sparse-ae-blas.XXXX)
mkdir -p "$OUT"
cd "$ROOT"
echo "# GEMM: sparse-ae vs numpy BLAS, $(date '+%Y-%m-%d %H:%M %Z'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1) ($(nproc) cores)${ISA:+, capped at AVX2 (sparse-ae SPARSE_AE_MAX_ISA=avx2, OpenBLAS Haswell)}; command: $0 $ARGS"
GEMM_BEST_OF=$N GEMM_BEST_OF_TSV=$OUT/ours.tsv cargo bench --quiet --bench gemm -- fma_peak \
    --warm-up-time 0.2 --measurement-time 0.5 >"$OUT/bench.log" 2>&1 || { cat "$OUT/bench.log" >&2; exit 1; }
grep -E '^(cpu|blocking|fma_peak:)' "$OUT/bench.log"
echo
env "${BLAS_ENV[@]}" "$PY" "$ROOT/benches/blas_time.py" "$OUT/ours.tsv" --best-of "$N" | tee "$OUT/report.md"
