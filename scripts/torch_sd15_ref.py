"""PyTorch CPU reference for Distillery's `sd15` benchmark workload (docs/benchmarks.md): one
forward pass of the Stable Diffusion 1.5 UNet (diffusers UNet2DConditionModel with
runwayml/stable-diffusion-v1-5's unet/config.json, random weights) on one 1 x 4 x 64 x 64 latent
at t = 999 with 1 x 77 x 768 encoder hidden states, under torch.no_grad(), timed as
../shared/bench/torch_ref.py times its workloads (warm-up 1, median of 3).

Usage: python scripts/torch_sd15_ref.py [--threads N] [--cpu-time] [--weight-format fp32|bf16]
Prints one JSON object: sd15_unet_forward_s, sd15_unet_parameters_m, sd15_unet_weights_mib,
peak_rss_mib.

--weight-format bf16 is the UNet in bfloat16 (`unet.to(torch.bfloat16)`, inputs in bfloat16 too):
every weight and activation in bfloat16, not only the products' weights as in Distillery's
`--weight-format bf16`. The model is made with bfloat16 as the default dtype, so that its float32
weights never exist (the peak RSS is that of the bfloat16 model), then `.to(torch.bfloat16)`
(a no-op then) as a user would write it.
Needs torch and diffusers (pip install torch diffusers).
"""
import json, resource, statistics, sys, time

import torch
from diffusers import UNet2DConditionModel

threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 2
clock = time.process_time if "--cpu-time" in sys.argv else time.perf_counter
weights = sys.argv[sys.argv.index("--weight-format") + 1] if "--weight-format" in sys.argv else "fp32"
if weights not in ("fp32", "bf16"):
    sys.exit(f"--weight-format: expected fp32 or bf16, found {weights}")
dtype = torch.bfloat16 if weights == "bf16" else torch.float32
torch.set_num_threads(threads)
torch.manual_seed(0)
torch.set_default_dtype(dtype)

config = dict(
    act_fn="silu", attention_head_dim=8, block_out_channels=(320, 640, 1280, 1280), center_input_sample=False,
    cross_attention_dim=768,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    downsample_padding=1, flip_sin_to_cos=True, freq_shift=0, in_channels=4, layers_per_block=2,
    mid_block_scale_factor=1, norm_eps=1e-5, norm_num_groups=32, out_channels=4, sample_size=64,
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
)
unet = UNet2DConditionModel(**config).eval().to(dtype)
latent = torch.randn(1, 4, 64, 64, dtype=dtype)
context = torch.randn(1, 77, 768, dtype=dtype)
t = torch.tensor([999])


def forward():
    with torch.no_grad():
        unet(latent, t, encoder_hidden_states=context)


forward()
times = []
for _ in range(3):
    t0 = clock(); forward(); times.append(clock() - t0)
print(json.dumps({
    "sd15_unet_forward_s": statistics.median(times),
    "sd15_unet_parameters_m": sum(p.numel() for p in unet.parameters()) / 1e6,
    "sd15_unet_weights_mib": sum(p.numel() * p.element_size() for p in unet.parameters()) / 2**20,
    "weight_format": weights,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
