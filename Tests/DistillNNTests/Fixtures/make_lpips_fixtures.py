"""LPIPS fixtures beside the shared ones.

1. lpips-vgg-randbackbone: the vgg fixture, made as make_fixtures.py (../shared/fixtures)
makes the alex and squeeze ones: the `lpips` package's network with its shipped v0.1 linear heads and a random
trunk (`pnet_rand=True`, no download), its state dict without the duplicate `lins.*` keys,
and `io.safetensors` with image batches `a`, `b` in [-1, 1] and the package's `distance`.

VGG16's trunk has 14.7M weights (59 MB in float32), so to keep the repository small each
trunk convolution's random weights are replaced by sign(w) * s, with s the standard deviation
of that layer's random init, and the whole state dict is stored as float16. The reference
distance is computed by the package from exactly those (float16-representable) values, so the
check is still number for number. The images are small: 2 pairs of 3 x 32 x 32.

Run from anywhere: python make_lpips_fixtures.py [OUT_DIR]   (default: this script's folder)
Made with lpips 0.1.4, torch 2.15 (CPU), safetensors 0.8.
"""
import os, sys

import torch
import lpips
from safetensors.torch import load_file, save_file

out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))

torch.manual_seed(0)
m = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False).eval()
with torch.no_grad():
    for name, p in m.net.named_parameters():
        if name.endswith(".weight"):
            p.copy_(torch.sign(p) * p.std())
    sd = {k: v.clone().half().contiguous() for k, v in m.state_dict().items() if not k.startswith("lins.")}
    m.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    assert all(torch.equal(v.float(), m.state_dict()[k]) for k, v in sd.items())

d = os.path.join(out, "lpips-vgg-randbackbone"); os.makedirs(d, exist_ok=True)
save_file(sd, os.path.join(d, "weights.safetensors"))
a = torch.rand(2, 3, 32, 32) * 2 - 1
b = (a + 0.3 * torch.randn_like(a)).clamp(-1, 1)
with torch.no_grad():
    dist = m(a, b).flatten()
save_file({"a": a, "b": b, "distance": dist}, os.path.join(d, "io.safetensors"))
print("distance", dist.tolist())

grads = {}
for net in ["alex", "vgg", "squeeze"]:
    torch.manual_seed(1)
    m = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
    sd = load_file(os.path.join(out, f"lpips-{net}-randbackbone", "weights.safetensors"))
    m.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    a = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_()
    b = (a.detach() + 0.3 * torch.randn(2, 3, 32, 32)).clamp(-1, 1).requires_grad_()
    (m(a, b).flatten() * torch.tensor([0.7, 1.3])).sum().backward()
    grads.update({f"{net}.a": a.detach(), f"{net}.b": b.detach(), f"{net}.grad_a": a.grad, f"{net}.grad_b": b.grad})
save_file(grads, os.path.join(out, "lpips-gradients.safetensors"))
