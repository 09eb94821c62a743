"""LPIPS fixtures: lpips-{alex,vgg,squeeze}-randbackbone and lpips-gradients.safetensors.

The `lpips` package's network with its shipped v0.1 linear heads and a trunk whose weights
follow a formula both sides can compute, so the repository holds no trunk weights (VGG16's
alone are 59 MB). For the trunk tensor at position p of the sorted `net.*` keys, element i
(row-major) is, computed in float64 and rounded once to float32:

    h = ((i + 1 + 1000003 * p) * 2654435761) mod 2**32
    w = (2 * h / 2**32 - 1) * s,   s = sqrt(6 / fan_in) for a conv weight, 0.05 for a bias

`weights.safetensors` holds the other tensors (scaling layer, lin heads) and, in its metadata
key "trunk", the JSON list of [key, shape] of the trunk; the Swift tests rebuild the full state
dict from it (DistillTestSupport.lpipsTestWeights). `io.safetensors` holds image batches `a`,
`b` in [-1, 1] (2 pairs of 3 x 32 x 32) and the package's `distance` with those weights.

Run from anywhere: python make_lpips_fixtures.py [OUT_DIR]   (default: this script's folder)
Made with lpips 0.1.4, torch 2.15 (CPU), numpy, safetensors 0.8.
"""
import json, math, os, sys

import numpy as np
import torch
import lpips
from safetensors.torch import save_file

out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))


def formula(position, shape):
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.uint64)
    h = ((i + np.uint64(1 + 1000003 * position)) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    s = math.sqrt(6.0 / (n // shape[0])) if len(shape) == 4 else 0.05
    return torch.from_numpy(((2 * (h.astype(np.float64) / 4294967296.0) - 1) * s).astype(np.float32).reshape(shape))


def network(net):
    m = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
    sd = {k: v for k, v in m.state_dict().items() if not k.startswith("lins.")}
    trunk = sorted(k for k in sd if k.startswith("net."))
    with torch.no_grad():
        full = {k: v.clone() for k, v in sd.items()}
        for p, k in enumerate(trunk):
            full[k] = formula(p, list(sd[k].shape))
        m.load_state_dict(full, strict=False)
    rest = {k: v.contiguous() for k, v in sd.items() if k not in trunk}
    listing = json.dumps([[k, list(sd[k].shape)] for k in trunk], separators=(",", ":"))
    return m, rest, listing


grads = {}
for net in ["alex", "vgg", "squeeze"]:
    m, rest, listing = network(net)
    d = os.path.join(out, f"lpips-{net}-randbackbone")
    os.makedirs(d, exist_ok=True)
    save_file(rest, os.path.join(d, "weights.safetensors"), metadata={"trunk": listing})
    torch.manual_seed(0)
    a = torch.rand(2, 3, 32, 32) * 2 - 1
    b = (a + 0.3 * torch.randn_like(a)).clamp(-1, 1)
    with torch.no_grad():
        dist = m(a, b).flatten()
    save_file({"a": a, "b": b, "distance": dist}, os.path.join(d, "io.safetensors"))
    print(net, "distance", dist.tolist())

    torch.manual_seed(1)
    a = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_()
    b = (a.detach() + 0.3 * torch.randn(2, 3, 32, 32)).clamp(-1, 1).requires_grad_()
    (m(a, b).flatten() * torch.tensor([0.7, 1.3])).sum().backward()
    grads.update({f"{net}.a": a.detach(), f"{net}.b": b.detach(), f"{net}.grad_a": a.grad, f"{net}.grad_b": b.grad})
save_file(grads, os.path.join(out, "lpips-gradients.safetensors"))
