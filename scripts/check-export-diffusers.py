"""Checks that diffusers loads a student folder written by `pipeline export` and samples it as
`pipeline generate` does: UNet2DModel.from_pretrained + DDIMScheduler.from_pretrained, eta 0,
the scheduler's own set_timesteps(len(distillery_timesteps)), from the same noise; a
class-conditional student samples class i mod classes for sample i, as `generate` does.

Usage: python check-export-diffusers.py STUDENT_DIR PIPELINE_EXECUTABLE
(needs torch, diffusers and safetensors; prints the largest difference)."""
import json, os, subprocess, sys, tempfile

import torch
from diffusers import DDIMScheduler, UNet2DModel
from safetensors.torch import load_file, save_file

folder, pipeline = sys.argv[1], sys.argv[2]
unet = UNet2DModel.from_pretrained(folder).eval()
scheduler = DDIMScheduler.from_pretrained(folder)
steps = len(json.load(open(os.path.join(folder, "scheduler_config.json")))["distillery_timesteps"])
size = unet.config.sample_size
noise = torch.randn(4, unet.config.in_channels, size, size, generator=torch.Generator().manual_seed(0))
scheduler.set_timesteps(steps)
classes = unet.config.num_class_embeds
if classes is not None and "_distillery_null_class" in unet.config:
    classes -= 1
labels = None if classes is None else torch.arange(noise.shape[0]) % classes
x = noise
with torch.no_grad():
    for t in scheduler.timesteps:
        out = unet(x, t, class_labels=labels).sample
        x = scheduler.step(out, t, x, eta=0.0, use_clipped_model_output=True).prev_sample
with tempfile.TemporaryDirectory() as d:
    save_file({"noise": noise.contiguous()}, os.path.join(d, "noise.safetensors"))
    out = os.path.join(d, "samples.safetensors")
    subprocess.run([pipeline, "generate", "--student", folder, "--noise", os.path.join(d, "noise.safetensors"),
                    "--out", out], check=True)
    ours = load_file(out)["samples"]
print(f"diffusers timesteps {scheduler.timesteps.tolist()}; max |diffusers - distillery| = {(ours - x).abs().max().item():.3g}"
      f" over samples of std {x.std().item():.3g}")
