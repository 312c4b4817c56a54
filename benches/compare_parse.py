#!/usr/bin/env python3
"""Helper of benches/compare.sh (standard library only).

  timed LOG [--timeout S] -- CMD...   run CMD (stdout+stderr to LOG); print "FOREIGN WALL", where
                                      FOREIGN = CPU used by other processes during the run / (cores * wall)
  record TSV KIND WL FW VARIANT PARSER LOG FOREIGN [BATCH]
                                      parse LOG (PARSER: bencher | cli | peer) and append one row to TSV
  table TSV [--reference] [KEY=VALUE...]
                                      print the markdown report of the rows in TSV
"""
import json, os, re, signal, statistics, subprocess, sys, time

NAMES = {"W1": "W1 deep b32", "W2": "W2 deep b256", "W3": "W3 shallow L1 b32",
         "W4": "W4 overcomplete KL b256", "W5": "W5 denoising b32", "W6": "W6 conv b64",
         "W7": "W7 TopK SAE 768-16384 b1024"}
FRAMEWORKS = [("torch", "PyTorch"), ("jax", "JAX"), ("keras", "Keras")]
# Reference figures of /work/shared/bench/README.md (quiet 2-core Ice Lake, samples/s), used only when
# no peer environment is given.
REFERENCE = {
    ("torch", "eager"): [9133, 35225, 15136, 12426, 9499, 1473],
    ("torch", "compile"): [11448, None, None, 13267, None, None],
    ("keras", "eager"): [4437, 12915, 9733, 6637, 3040, 2376],
    ("keras", "xla"): [6676, 23690, None, None, None, None],
    ("jax", "jit"): [19181, 42572, 51165, 10457, 13785, 1928],
    ("jax", "scan"): [31607, 46797, 67604, 13016, 22180, 601],
}
REFERENCE_EPOCH = {"torch": (5.9, 0.292, 930), "jax": (3.1, 0.292, 750), "keras": (18.6, 0.292, 2500)}


def busy_ticks():
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:]))
    return v[0] + v[1] + v[2] + v[5] + v[6]


def timed(argv):
    log = argv[0]
    timeout = None
    rest = argv[1:]
    if rest[:1] == ["--timeout"]:
        timeout = float(rest[1])
        rest = rest[2:]
    cmd = rest[1:] if rest[:1] == ["--"] else rest
    hz, ncpu = os.sysconf("SC_CLK_TCK"), os.cpu_count()
    b0, c0, t0 = busy_ticks(), os.times(), time.perf_counter()
    with open(log, "w") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            out.write(f"\n[compare] killed after {timeout:.0f} s\n")
            rc = 124
    wall = time.perf_counter() - t0
    c1 = os.times()
    own = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    foreign = max(0.0, (busy_ticks() - b0) / hz - own) / (ncpu * wall)
    print(f"{foreign:.3f} {wall:.1f}")
    return rc


def parse(parser, log, batch):
    """Returns a dict of figures, or raises ValueError."""
    text = open(log, errors="replace").read()
    if parser == "bencher":
        m = re.search(r"bench:\s+([0-9,]+) ns/iter", text)
        if not m:
            raise ValueError("no 'bench: … ns/iter' line")
        return {"value": batch * 1e9 / int(m.group(1).replace(",", ""))}
    if parser == "cli":
        ep = re.search(r"^epoch\s+1\b.*?\btest ([0-9.]+).*?([0-9.]+)s\s*$", text, re.M)
        rss = re.search(r"peak RSS ([0-9.]+) MB", text)
        if not ep:
            raise ValueError("no 'epoch 1 … test … s' line")
        return {"value": float(ep.group(2)), "test": float(ep.group(1)),
                "rss": float(rss.group(1)) if rss else None}
    if parser == "peer":
        # torch_topk.py (W7) prints one line: "W7 <variant> <samples/s>".
        w7 = re.findall(r"^W7 \S+ ([0-9.]+)\s*$", text, re.M)
        if w7:
            return {"value": float(w7[-1])}
        lines = [l for l in text.splitlines() if l.startswith("{")]
        if not lines:
            raise ValueError("no JSON line")
        d = json.loads(lines[-1])
        if "epoch_wall_s" in d:
            return {"value": d["epoch_wall_s"], "test": d["test_bce_after"], "rss": d["maxrss_mb"]}
        n = len(d["samples_per_s"])
        return {"value": d["median"], "clean": f"{d['n_clean']}/{n}",
                "foreign": statistics.mean(d["foreign_per_repeat"])}
    raise ValueError(f"unknown parser {parser}")


def record(argv):
    tsv, kind, wl, fw, variant, parser, log, foreign = argv[:8]
    batch = int(argv[8]) if len(argv) > 8 else 1
    # measured by compare.sh just before the run (`sparse-ae info`)
    round_trip = os.environ.get("ROUND_TRIP_NS", "")
    try:
        d = parse(parser, log, batch)
        # the peers measure foreign CPU over their timed loops only, which is the better figure
        row = [kind, wl, fw, variant, f"{d['value']:.6g}", f"{d.get('foreign', float(foreign)):.3f}",
               d.get("clean", ""), "" if d.get("test") is None else f"{d['test']:.5f}",
               "" if d.get("rss") is None else f"{d['rss']:.0f}", round_trip]
        ok = True
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        row = [kind, wl, fw, variant, "fail", foreign, "", "", str(e).replace("\t", " "), round_trip]
        ok = False
    with open(tsv, "a") as f:
        f.write("\t".join(row) + "\n")
    print(("ok " if ok else "FAILED ") + " ".join(row[:6]) + ("" if ok else f" (see {log})"))
    return 0


def fmt(v, digits=0):
    return "–" if v is None else f"{v:,.{digits}f}"


def table(argv):
    tsv, reference = argv[0], "--reference" in argv
    meta = dict(a.split("=", 1) for a in argv[1:] if "=" in a)
    rows = [l.rstrip("\n").split("\t") for l in open(tsv)] if os.path.exists(tsv) else []
    runs = {}  # (kind, wl, fw, variant) -> list of rows
    for r in rows:
        runs.setdefault(tuple(r[:4]), []).append(r)

    def med(key, col=4):
        vals = [float(r[col]) for r in runs.get(key, []) if r[4] != "fail" and r[col]]
        return statistics.median(vals) if vals else None

    def failed(key):
        return any(r[4] == "fail" for r in runs.get(key, []))

    wls = meta.get("workloads", "").split(",")
    out = ["# sparse-ae vs peers: seed workloads, samples/s (higher is better)", ""]
    labels = [("date", "date"), ("cpu", "CPU"), ("load_start", "load average at start"),
              ("load_end", "load average at end"),
              ("command", "command"), ("sparse_ae", "sparse-ae"), ("peers", "peers")]
    for k, label in labels:
        if meta.get(k):
            out.append(f"- {label}: {meta[k]}")
    out.append("")
    foreign = [float(r[5]) for r in rows if r[5]]
    if foreign and statistics.median(foreign) > 0.05:
        out.append(f"**Noisy machine: other processes used a median {statistics.median(foreign):.0%} of the CPU "
                   "while timing (see the foreign column); figures and ratios are unreliable.**")
        out.append("")
    if reference:
        out.append("**Peer columns are the reference figures of the bench README (quiet machine, another "
                   "sitting), NOT measured now: the ratios are indicative only.**")
        out.append("")
    out.append("| workload | sparse-ae | PyTorch | JAX | Keras | best peer | ratio |")
    out.append("| --- | --- | --- | --- | --- | --- | --- |")
    for i, wl in enumerate(wls):
        sa = med(("bench", wl, "sparse-ae", "criterion"))
        sa_cell = fmt(sa) if sa is not None else (
            "failed" if failed(("bench", wl, "sparse-ae", "criterion")) else "not in bench")
        cells, best = [], None
        for fw, _ in FRAMEWORKS:
            cand = []
            for (kind, w, f, var) in runs:
                if kind == "bench" and w == wl and f == fw and med((kind, w, f, var)) is not None:
                    cand.append((med((kind, w, f, var)), var))
            if reference:
                idx = int(wl[1:]) - 1
                cand = [(v[idx], var) for (f, var), v in REFERENCE.items()
                        if f == fw and idx < len(v) and v[idx] is not None]
            if cand:
                v, var = max(cand)
                tag = " ref" if reference else ""
                cells.append(f"{fmt(v)} ({var}{tag})")
                if best is None or v > best[0]:
                    best = (v, f"{dict(FRAMEWORKS)[fw]} {var}")
            else:
                anyf = any(failed(k) for k in runs if k[0] == "bench" and k[1] == wl and k[2] == fw)
                cells.append("failed" if anyf else "–")
        best_cell = f"{fmt(best[0])} ({best[1]})" if best else "–"
        ratio = f"{sa / best[0]:.2f}×" if best and sa is not None else "–"
        out.append(f"| {NAMES.get(wl, wl)} | {sa_cell} | " + " | ".join(cells) + f" | {best_cell} | {ratio} |")

    ep = [k for k in runs if k[0] == "epoch"]
    if ep or (reference and meta.get("epoch") == "1"):
        out += ["", "W1, one shuffled Fashion-MNIST epoch (batch 32): wall s (excluding start-up) · test BCE "
                "after it · peak RSS MB", "",
                "| framework | epoch wall s | test BCE | peak RSS MB | wall vs sparse-ae |", "| --- | --- | --- | --- | --- |"]
        sa_wall = med(("epoch", "W1", "sparse-ae", "cli"))
        entries = [("sparse-ae", ("epoch", "W1", "sparse-ae", "cli"))] + [
            (name, ("epoch", "W1", fw, "eager" if fw != "jax" else "jit")) for fw, name in FRAMEWORKS]
        for name, key in entries:
            w, t, r = med(key), med(key, 7), med(key, 8)
            if reference and key[2] in REFERENCE_EPOCH:
                w, t, r = REFERENCE_EPOCH[key[2]]
                name += " (README ref)"
            if w is None and not failed(key):
                continue
            rel = f"{w / sa_wall:.2f}×" if w is not None and sa_wall else "–"
            out.append(f"| {name} | {fmt(w, 2) if w is not None else 'failed'} | {fmt(t, 4)} | {fmt(r)} | {rel} |")

    if rows:
        out += ["", "All runs (median over runs; foreign = CPU share used by other processes while timing; "
                "clean = peer repeats under 5% foreign; round trip = a value between two threads and back "
                "just before the run, `sparse-ae info`: how far apart the CPUs sat):", "",
                "| kind | workload | framework | variant | runs | median | values | foreign | clean | round trip, ns |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for key, rs in runs.items():
            m = med(key)
            d = 2 if key[0] == "epoch" else 0
            vals = ", ".join("fail" if r[4] == "fail" else fmt(float(r[4]), d) for r in rs)
            out.append(f"| {' | '.join(key)} | {len(rs)} | {fmt(m, d) if m is not None else 'failed'} | {vals} | "
                       + ", ".join(r[5] for r in rs) + " | " + ", ".join(r[6] for r in rs if r[6]) + " | "
                       + ", ".join((r[9] if len(r) > 9 else "") or "?" for r in rs) + " |")
    print("\n".join(out))
    return 0


def main():
    cmd, argv = sys.argv[1], sys.argv[2:]
    return {"timed": timed, "record": record, "table": table}[cmd](argv)


if __name__ == "__main__":
    sys.exit(main())
