"""numpy's BLAS on the GEMM bench's shapes, timed as the bench times sparse-ae.

usage: python blas_time.py OURS.tsv [--best-of N]

OURS.tsv is the table `GEMM_BEST_OF_TSV` makes (`cargo bench --bench gemm`): one
row per shape with m, k, n, the transposes and sparse-ae's best GFLOP/s on one
and two threads. For each shape this times `np.matmul(opA, opB, out=C)` into a
preallocated C, on 1 and on 2 BLAS threads (threadpoolctl), best of N calls
after 50 ms of untimed ones, and prints a Markdown table of both with the ratios, headed by the BLAS build
(library, version, kernel architecture) as threadpoolctl reports it.
"""
import argparse, csv, sys, time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits


# Untimed calls before each set, as the GEMM bench warms sparse-ae's pool
# up (`WARM_UP` in benches/gemm.rs): a BLAS thread woken at the start of a
# set can share a CPU with the caller for tens of milliseconds.
WARM_UP_S = 0.05


def best_gflops(a, b, out, flops, runs):
    warm = time.perf_counter()
    while True:
        np.matmul(a, b, out=out)
        if time.perf_counter() - warm >= WARM_UP_S:
            break
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t)
    return flops / best / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("--best-of", type=int, default=30)
    args = ap.parse_args()
    rows = list(csv.DictReader(open(args.ours), delimiter="\t"))
    if not rows:
        sys.exit(f"{args.ours}: no rows")
    rng = np.random.default_rng(0)
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    desc = ", ".join(
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')} kernel)" for i in blas
    ) or "unknown BLAS"
    print(f"numpy {np.__version__}, {desc}; best of up to {args.best_of} calls per shape\n")
    print("| shape | sparse-ae 1t | BLAS 1t | ratio 1t | sparse-ae 2t | BLAS 2t | ratio 2t |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    worst = []
    for r in rows:
        m, k, n = int(r["m"]), int(r["k"]), int(r["n"])
        a = rng.uniform(-1, 1, (k, m) if r["ta"] == "1" else (m, k)).astype(np.float32)
        b = rng.uniform(-1, 1, (n, k) if r["tb"] == "1" else (k, n)).astype(np.float32)
        a = a.T if r["ta"] == "1" else a
        b = b.T if r["tb"] == "1" else b
        out = np.empty((m, n), np.float32)
        flops = 2.0 * m * n * k
        runs = max(3, min(args.best_of, int(40e9 / flops)))
        res = {}
        for t in (1, 2):
            with threadpool_limits(limits=t, user_api="blas"):
                res[t] = best_gflops(a, b, out, flops, runs)
        o1, o2 = float(r["ours_1t"]), float(r["ours_2t"])
        q1, q2 = o1 / res[1], o2 / res[2]
        worst += [q1, q2]
        print(f"| {r['name']} | {o1:.1f} | {res[1]:.1f} | {q1:.2f} | {o2:.1f} | {res[2]:.1f} | {q2:.2f} |")
    print(f"\nshapes at or above BLAS: {sum(q >= 1.0 for q in worst)} of {len(worst)}; lowest ratio {min(worst):.2f}")


if __name__ == "__main__":
    main()
