#!/usr/bin/env python3
"""PyTorch (float64 autograd) reference for tests/torch_reference.rs.

Environment (CPU PyTorch, a few minutes to install):
    python3 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch numpy
Regenerate the fixture from the repository root:
    /tmp/torchref/bin/python tests/reference/make_torch_reference.py
It writes tests/reference/torch_reference.safetensors. CI does not run this
script; the cargo test reads the committed file.

For seven presets built for 16 inputs (4×4 images): shallow, deep, sparse-l1
(with λ = 1e-3 instead of the preset's 1e-5), sparse-kl (KL + L2, ½-squared
error), overcomplete-kl, conv and topk, it stores (all F32; every value is
computed in float64 from the f32-rounded weights and batch):
    {preset}/x                 one batch, (8, 16), uniform in [0, 1)
    {preset}/init/{name}       initial weights (Glorot uniform) and biases (±0.1)
    {preset}/grad/{name}       the gradient of the total loss at init
    {preset}/step1/{name}      parameters after 1 Adam step on that batch
    {preset}/step10/{name}     parameters after 10 Adam steps on that batch
and, in the metadata, {preset}/loss = "recon l1 kl l2" at init (float64 repr).

Adam is the engine's (Keras') update, written out here because
torch.optim.Adam puts ε elsewhere: with t the 1-based step,
    lr_t = lr·√(1 − β2ᵗ)/(1 − β1ᵗ)
    m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²
    p ← p − lr_t·m/(√v + ε)          (ε outside the bias correction)
torch.optim.Adam computes p ← p − lr·m̂/(√v̂ + ε) with m̂ = m/(1 − β1ᵗ),
v̂ = v/(1 − β2ᵗ). The script prints how far one torch.optim.Adam step is from
this one.
"""
import json
import math
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
INPUT, SIDE, BATCH = 16, 4, 8
LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-7
KL_CLAMP = 1e-6


def dense(units, act):
    return ("dense", units, act)


# Each preset: layers (kind, size, activation), the name of every layer's
# parameters (None for parameter-free layers), the loss and penalties. These
# follow src/nn/presets.rs.
PRESETS = {
    "shallow": dict(layers=[dense(32, "relu"), dense(INPUT, "sigmoid")],
                    names=["encoder.0", "decoder.0"], loss="bce"),
    "deep": dict(layers=[dense(128, "relu"), dense(32, "relu"), dense(128, "relu"),
                         dense(INPUT, "sigmoid")],
                 names=["encoder.0", "encoder.2", "decoder.0", "decoder.2"], loss="bce"),
    "sparse-l1": dict(layers=[dense(32, "relu"), dense(INPUT, "sigmoid")],
                      names=["encoder.0", "decoder.0"], loss="bce", l1=(0, 1e-3)),
    "sparse-kl": dict(layers=[dense(196, "sigmoid"), dense(INPUT, "sigmoid")],
                      names=["encoder.0", "decoder.0"], loss="sse", kl=(0, 0.1, 3.0),
                      decay=1.5e-3),
    "overcomplete-kl": dict(layers=[dense(1024, "sigmoid"), dense(INPUT, "sigmoid")],
                            names=["encoder.0", "decoder.0"], loss="bce", kl=(0, 0.05, 3.0)),
    "conv": dict(layers=[("conv", 16, "relu"), ("pool", 2, None), ("conv", 8, "relu"),
                         ("pool", 2, None), ("up", 2, None), ("conv", 16, "relu"),
                         ("up", 2, None), ("conv", 1, "sigmoid")],
                 names=["encoder.0", None, "encoder.3", None, None, "decoder.1", None,
                        "decoder.4"], loss="bce", l1=(3, 1e-5)),
    "topk": dict(layers=[dense(1024, "relu"), dense(INPUT, "sigmoid")],
                 names=["encoder.0", "decoder.0"], loss="bce", topk=(0, 32)),
}


def init_params(spec, gen):
    """Glorot-uniform weights and biases uniform in ±0.1, rounded to f32."""
    params, fan, chans = {}, INPUT, 1
    for (kind, size, _), name in zip(spec["layers"], spec["names"]):
        if kind == "dense":
            shape, fan_in, fan_out = (size, fan), fan, size
            fan = size
        elif kind == "conv":
            shape, fan_in, fan_out = (size, chans, 3, 3), chans * 9, size * 9
            chans = size
        else:
            continue
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        w = (torch.rand(shape, generator=gen) * 2 - 1) * limit
        b = (torch.rand(shape[0], generator=gen) * 2 - 1) * 0.1
        params[f"{name}.weight"] = w.float().double()
        params[f"{name}.bias"] = b.float().double()
    return params


def act(z, a):
    return {"relu": torch.relu, "sigmoid": torch.sigmoid}[a](z)


def loss_parts(spec, p, x):
    """recon, l1, kl, l2 of the engine's objective (see src/nn/model.rs)."""
    h = x.reshape(BATCH, 1, SIDE, SIDE) if spec["layers"][0][0] == "conv" else x
    acts, n = [], len(spec["layers"])
    for i, ((kind, size, a), name) in enumerate(zip(spec["layers"], spec["names"])):
        last = i == n - 1
        if kind == "dense":
            z = h @ p[f"{name}.weight"].T + p[f"{name}.bias"]
        elif kind == "conv":
            z = F.conv2d(h, p[f"{name}.weight"], p[f"{name}.bias"], padding=1)
        elif kind == "pool":
            z = F.max_pool2d(h, size, size)
        else:
            z = F.interpolate(h, scale_factor=size, mode="nearest")
        if last:
            logits = z.reshape(BATCH, -1)
            break
        h = act(z, a) if a else z
        if "topk" in spec and spec["topk"][0] == i:
            k = spec["topk"][1]
            keep = torch.zeros_like(h).scatter(1, h.topk(k, dim=1).indices, 1.0)
            h = h * keep
        acts.append(h)
    zero = torch.zeros(())
    if spec["loss"] == "bce":
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="mean")
    else:  # ½-squared error, summed over features, mean over the batch
        recon = 0.5 * ((torch.sigmoid(logits) - x) ** 2).sum() / BATCH
    l1 = zero
    if "l1" in spec:
        layer, lam = spec["l1"]
        l1 = lam * acts[layer].abs().sum() / BATCH
    kl = zero
    if "kl" in spec:
        layer, rho, beta = spec["kl"]
        rho_hat = acts[layer].mean(dim=0).clamp(KL_CLAMP, 1 - KL_CLAMP)
        kl = beta * (rho * torch.log(rho / rho_hat)
                     + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
    l2 = zero
    if "decay" in spec:
        l2 = spec["decay"] * sum((w ** 2).sum() for k, w in p.items() if k.endswith("weight"))
    return recon, l1, kl, l2


def grads(spec, p, x):
    leaves = {k: v.clone().requires_grad_(True) for k, v in p.items()}
    parts = loss_parts(spec, leaves, x)
    total = parts[0] + parts[1] + parts[2] + parts[3]
    total.backward()
    return [float(v.detach()) for v in parts], {k: v.grad.detach() for k, v in leaves.items()}


def adam(spec, p, x, steps, out):
    """The engine's (Keras) Adam; out[t] = parameters after step t."""
    p = {k: v.clone() for k, v in p.items()}
    m = {k: torch.zeros_like(v) for k, v in p.items()}
    v = {k: torch.zeros_like(w) for k, w in p.items()}
    for t in range(1, steps + 1):
        _, g = grads(spec, p, x)
        lr_t = LR * math.sqrt(1 - B2 ** t) / (1 - B1 ** t)
        for k in p:
            m[k] = B1 * m[k] + (1 - B1) * g[k]
            v[k] = B2 * v[k] + (1 - B2) * g[k] ** 2
            p[k] = p[k] - lr_t * m[k] / (v[k].sqrt() + EPS)
        out[t] = {k: w.clone() for k, w in p.items()}


def torch_adam_gap(spec, p, x):
    """Relative gap of one torch.optim.Adam step (same ε) from the Keras one,
    on entries with 1e-7 ≤ |g| ≤ 1e-5, and its median there."""
    _, g = grads(spec, p, x)
    leaves = [w.clone().requires_grad_(True) for w in p.values()]
    opt = torch.optim.Adam(leaves, lr=LR, betas=(B1, B2), eps=EPS)
    for w, k in zip(leaves, p):
        w.grad = g[k].clone()
    opt.step()
    gaps = []
    for w, k in zip(leaves, p):
        torch_step = (p[k] - w.detach()).flatten()
        gk = g[k].flatten()
        keras = LR * math.sqrt(1 - B2) / (1 - B1) * (1 - B1) * gk / (
            ((1 - B2) * gk ** 2).sqrt() + EPS)
        sel = (gk.abs() >= 1e-7) & (gk.abs() <= 1e-5)
        gaps.append(((torch_step - keras).abs() / torch_step.abs())[sel])
    gaps = torch.cat(gaps)
    return (float(gaps.median()) if len(gaps) else float("nan")), len(gaps)


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name].numpy().astype("<f4")).tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def main():
    gen = torch.Generator().manual_seed(16)
    tensors, metadata = {}, {}
    for name, spec in PRESETS.items():
        x = torch.rand(BATCH, INPUT, generator=gen).float().double()
        p = init_params(spec, gen)
        parts, g = grads(spec, p, x)
        after = {}
        adam(spec, p, x, 10, after)
        tensors[f"{name}/x"] = x
        for k in p:
            tensors[f"{name}/init/{k}"] = p[k]
            tensors[f"{name}/grad/{k}"] = g[k]
            tensors[f"{name}/step1/{k}"] = after[1][k]
            tensors[f"{name}/step10/{k}"] = after[10][k]
        metadata[f"{name}/loss"] = " ".join(repr(v) for v in parts)
        gap, n = torch_adam_gap(spec, p, x)
        print(f"{name}: loss parts {parts}; torch.optim.Adam vs Keras step 1, "
              f"median relative gap {gap:.3f} over {n} entries with 1e-7 ≤ |g| ≤ 1e-5")
    out = Path(__file__).with_name("torch_reference.safetensors")
    write_safetensors(out, tensors, metadata)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
