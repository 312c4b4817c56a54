#!/usr/bin/env python3
"""Fails when a GEMM tile keeps an accumulator on the stack inside a loop.

usage: spills.py BINARY [BINARY...]

Reads `objdump -d` of each x86-64 binary and, in every function of
`kernels::gemm` whose name ends in `_tile` (the register tiles: packed,
strided, transposed, dot), looks for an accumulator that lives in memory: a
vector load from a stack slot, an FMA into that register, and a store of it
back to the same slot, where the load can run again after the store (a loop,
followed along the function's direct jumps). Such a chain pays a store-to-load forwarding on every
step (the transposed tiles lost 40 % of their speed to one; see
docs/benchmarks.md, "A spilled accumulator in the transposed tiles").
A spill outside every loop (a masked last step, run once per tile) is
allowed. Prints what it checked; exits 1 listing the offenders.
"""

import re
import subprocess
import sys

FUNC = re.compile(r"^([0-9a-f]+) <(.*)>:$")
INSN = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
SLOT = r"(-?0x[0-9a-f]+)?\(%rsp(?:,[^)]*)?\)"
LOAD = re.compile(r"^(" + SLOT + r"),%([xyz]mm\d+)$")
STORE = re.compile(r"^%([xyz]mm\d+),(" + SLOT + r")$")
JUMP = re.compile(r"^([0-9a-f]+)\b")


def functions(binary):
    out = subprocess.run(
        ["objdump", "-d", "-C", "--no-show-raw-insn", binary],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    name, insns = None, []
    for line in out.splitlines():
        m = FUNC.match(line)
        if m:
            if name is not None:
                yield name, insns
            name, insns = m.group(2), []
            continue
        m = INSN.match(line)
        if m and name is not None:
            insns.append((int(m.group(1), 16), m.group(2), m.group(3).split("#")[0].strip()))
    if name is not None:
        yield name, insns


def is_tile(name):
    return "kernels::gemm" in name and re.search(r"::\w+_tile\b", name) is not None


def successors(insns):
    """Each instruction's successors: the next one unless the instruction
    is an unconditional jump or a return, and a direct jump's target."""
    index = {addr: i for i, (addr, _, _) in enumerate(insns)}
    succ = []
    for i, (_, op, args) in enumerate(insns):
        s = []
        if not (op.startswith("jmp") or op.startswith("ret") or op == "ud2") and i + 1 < len(insns):
            s.append(i + 1)
        if op.startswith("j"):
            m = JUMP.match(args)
            if m and int(m.group(1), 16) in index:
                s.append(index[int(m.group(1), 16)])
        succ.append(s)
    return succ


def reaches(succ, start, goal):
    """Whether instruction `goal` can run after instruction `start`."""
    seen, todo = {start}, [start]
    while todo:
        for j in succ[todo.pop()]:
            if j == goal:
                return True
            if j not in seen:
                seen.add(j)
                todo.append(j)
    return False


def spilled(insns):
    """Addresses of load–FMA–store chains on one stack slot that run again
    after the store (inside a loop)."""
    succ = None
    found = []
    for i, (addr, op, args) in enumerate(insns):
        if not op.startswith("vmov"):
            continue
        m = LOAD.match(args)
        if not m:
            continue
        slot, reg = m.group(1), m.group(3)
        window = list(enumerate(insns[i + 1 : i + 12], start=i + 1))
        fma = any(o.startswith("vfmadd") and a.endswith("%" + reg) for _, (_, o, a) in window)
        store = next(
            (
                j
                for j, (_, o, a) in window
                if o.startswith("vmov") and (s := STORE.match(a)) and s.group(1) == reg and s.group(2) == slot
            ),
            None,
        )
        if fma and store is not None:
            succ = succ or successors(insns)
            if reaches(succ, store, i):
                found.append(addr)
    return found


def main(binaries):
    if not binaries:
        sys.exit(__doc__)
    checked, bad = 0, []
    for binary in binaries:
        for name, insns in functions(binary):
            if not is_tile(name):
                continue
            checked += 1
            for addr in spilled(insns):
                bad.append(f"{binary}: {name} at {addr:#x}")
    print(f"spills: {checked} tile functions checked, {len(bad)} with an accumulator on the stack in a loop")
    for b in bad:
        print("  " + b)
    if checked == 0:
        sys.exit("spills: no tile function found (renamed? stripped?)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
