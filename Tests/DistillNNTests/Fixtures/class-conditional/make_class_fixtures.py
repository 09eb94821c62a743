"""Class-conditional diffusers UNet2DModel fixtures for the class_embed_type the shared
unet2d-classcond fixture (a num_class_embeds table) does not cover: "timestep" and "identity".

Each folder: config.json + diffusion_pytorch_model.safetensors as save_pretrained writes them,
and io.safetensors with `sample`, `timestep`, `class_labels` and diffusers' `output` =
model(sample, timestep, class_labels=class_labels).sample.
Run: python make_class_fixtures.py [OUT_DIR]   (default: this script's folder)
Made with diffusers 0.42.1, torch 2.15 (CPU).
"""
import os, sys

import torch
from diffusers import UNet2DModel
from safetensors.torch import save_file

out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))

BASE = dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(16, 32), layers_per_block=1,
            down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=4, attention_head_dim=8)


def fixture(name, labels, seed, **extra):
    torch.manual_seed(seed)
    m = UNet2DModel(**BASE, **extra).eval()
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for p in m.parameters():  # move every weight so all paths matter
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    m.save_pretrained(d, safe_serialization=True)
    sample = torch.randn(3, 1, 8, 8, generator=g)
    timestep = torch.tensor([10.0, 500.0, 987.25])
    with torch.no_grad():
        output = m(sample, timestep, class_labels=labels).sample
    save_file({"sample": sample, "timestep": timestep, "class_labels": labels.float().contiguous(),
               "output": output.contiguous()}, os.path.join(d, "io.safetensors"))


fixture("timestep", torch.tensor([0.0, 3.0, 7.5]), seed=1, class_embed_type="timestep")
fixture("identity", torch.randn(3, 64, generator=torch.Generator().manual_seed(5)), seed=2,
        class_embed_type="identity")
