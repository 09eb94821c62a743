"""Tiny diffusers UNet2DModel fixtures spanning the configuration space the Swift UNet2D supports.

Each fixture is a folder: config.json + diffusion_pytorch_model.safetensors as
`save_pretrained(..., safe_serialization=True)` writes them, plus io.safetensors holding
`sample`, `timestep` (float32; one fractional and one integer value) and diffusers' `output`.
Run from anywhere: python make_unet_fixtures.py [OUT_DIR]   (default: this script's folder)
Made with diffusers 0.42.1, torch 2.15 (CPU).
"""
import json, os, sys

import torch
from diffusers import UNet2DModel
from safetensors.torch import load_file, save_file

out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))

LEGACY = [(".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."), (".to_out.0.", ".proj_attn.")]


def perturb(m, seed):
    """Random init leaves GroupNorms at (1, 0) and some tensors tiny: move every weight so all paths matter."""
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.GroupNorm):
                mod.weight.add_(0.3 * torch.randn(mod.weight.shape, generator=g))
                mod.bias.add_(0.3 * torch.randn(mod.bias.shape, generator=g))
        for p in m.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))


def fixture(name, cfg, size=(8, 8), t=(10.0, 987.25), seed=0, keys=None):
    torch.manual_seed(seed)
    m = UNet2DModel(**cfg).eval()
    perturb(m, seed)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    m.save_pretrained(d, safe_serialization=True)
    weights = os.path.join(d, "diffusion_pytorch_model.safetensors")
    if keys is not None:  # rewrite the state-dict keys as an older or wrapped checkpoint has them
        sd = load_file(weights)
        save_file({keys(k): v for k, v in sd.items()}, weights, metadata={"format": "pt"})
    g = torch.Generator().manual_seed(seed + 2000)
    x = torch.randn(len(t), cfg.get("in_channels", 3), *size, generator=g)
    ts = torch.tensor(t, dtype=torch.float32)
    with torch.no_grad():
        y = m(x, ts).sample
    if keys is None or name.startswith("legacy"):  # diffusers itself maps legacy attention keys: check it reloads
        with torch.no_grad():
            y2 = UNet2DModel.from_pretrained(d).eval()(x, ts).sample
        assert torch.equal(y, y2), name
    save_file({"sample": x.contiguous(), "timestep": ts.contiguous(), "output": y.contiguous()},
              os.path.join(d, "io.safetensors"))
    params = sum(p.numel() for p in m.parameters())
    print(f"{name}: {params} parameters, output |max| {y.abs().max():.3f}")


def legacy(k):
    if ".attentions." in k:
        for new, old in LEGACY:
            k = k.replace(new, old)
    return k


C2 = dict(block_out_channels=(8, 16), norm_num_groups=4)

if __name__ == "__main__":
    # scale_shift time conditioning, one head everywhere (attention_head_dim None), mid attention without a norm
    fixture("ss-onehead", dict(C2, sample_size=8, layers_per_block=1,
                               down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                               up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                               resnet_time_scale_shift="scale_shift", attention_head_dim=None), seed=1)
    # scale_shift with attn_norm_num_groups (the mid attention gets a norm of its own group count); 2 and 4 heads
    fixture("ss-attngroups", dict(C2, sample_size=8, layers_per_block=1,
                                  down_block_types=("AttnDownBlock2D", "AttnDownBlock2D"),
                                  up_block_types=("AttnUpBlock2D", "AttnUpBlock2D"),
                                  resnet_time_scale_shift="scale_shift", attn_norm_num_groups=2,
                                  attention_head_dim=4), t=(0.0, 499.5), seed=2)
    # DDPM-port style: asymmetric downsample pad, [sin, cos] with freq_shift 1, eps 1e-6, centred input,
    # mid scale 1.414; 3 levels with 2 layers per block
    fixture("ddpm-style", dict(block_out_channels=(8, 8, 8), norm_num_groups=4, sample_size=16, layers_per_block=2,
                               down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                               up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
                               downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6,
                               center_input_sample=True, mid_block_scale_factor=1.414, attention_head_dim=8),
            size=(16, 16), t=(999.0, 0.75), seed=3)
    # 3 levels, 1 layer per block, exact GELU resnets, explicit time_embedding_dim, attention in every level
    fixture("gelu-3level", dict(block_out_channels=(8, 8, 16), norm_num_groups=4, sample_size=8, layers_per_block=1,
                                down_block_types=("AttnDownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                                up_block_types=("AttnUpBlock2D", "UpBlock2D", "AttnUpBlock2D"),
                                act_fn="gelu", time_embedding_dim=24, attention_head_dim=4),
            t=(123.4, 7.0), seed=4)
    # no mid block, 1 -> 2 channels, ReLU, odd sinusoid width (9 -> zero-padded column), non-square input,
    # attention keys as old checkpoints name them (query/key/value/proj_attn)
    fixture("legacy-nomid-relu", dict(block_out_channels=(9, 18), norm_num_groups=3, in_channels=1, out_channels=2,
                                      sample_size=8, layers_per_block=1, mid_block_type=None, act_fn="relu",
                                      down_block_types=("AttnDownBlock2D", "DownBlock2D"),
                                      up_block_types=("UpBlock2D", "AttnUpBlock2D"), attention_head_dim=3),
            size=(8, 16), t=(42.0, 3.5), seed=5, keys=legacy)
    # mid block without attention, "swish", keys with a DataParallel `module.` prefix
    fixture("module-prefix-noattn", dict(C2, sample_size=8, layers_per_block=1, add_attention=False, act_fn="swish",
                                         in_channels=2, out_channels=1,
                                         down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                         up_block_types=("AttnUpBlock2D", "UpBlock2D")),
            t=(250.0, 1.25), seed=6, keys=lambda k: "module." + k)
    # default time conditioning with attn_norm_num_groups: the mid attention norm differs from the resnets'
    fixture("attngroups-default", dict(C2, sample_size=8, layers_per_block=1,
                                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                       up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                                       attn_norm_num_groups=8, attention_head_dim=8, norm_eps=1e-6),
            t=(600.0, 33.3), seed=7)
