#!/usr/bin/env python3
"""Regenerates the safetensors reference files that SafetensorsTests.swift checks against.

Needs torch and safetensors (written with torch 2.15, safetensors 0.8). Run from anywhere:

    python3 make_safetensors_fixtures.py [/path/to/shared/fixtures]

Outputs, next to this script:
  dtypes.safetensors         one tensor per dtype (F32 F16 BF16 F64 I64 I32 U8 BOOL) with known
                             values (listed again in SafetensorsTests.swift) and metadata.
  written_f32.safetensors    the same F32 values saved as F32 / F16 / BF16 by torch; the Swift
  written_f16.safetensors    writer must reproduce these files byte for byte from the F32 values
  written_bf16.safetensors   (rounding ties, overflow, subnormals, -0, inf; no NaN, whose bf16
                             bits torch's vectorised CPU path sets to 0xFFFF).
If the shared fixtures folder is given, also:
  ../lpips-alex-randbackbone/weights.header.bin   the first 8+N bytes (length + JSON header) of
                             the 9.9 MB weights.safetensors, which is too big to commit;
  ../lpips-alex-randbackbone/weights.keys.json    its file length and every key's dtype and shape.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def f32_bits(bits):
    return torch.from_numpy(np.array(bits, dtype=np.uint32).view(np.float32).copy())


def dtypes_file():
    nan, inf = float("nan"), float("inf")
    tensors = {
        "f32": torch.tensor([[1.5, -2.25, 3.1415927], [1e-40, inf, -inf], [nan, -0.0, 16777216.0]], dtype=torch.float32),
        "f16": torch.tensor([1.0, -2.0, 65504.0, 6.103515625e-05, 5.960464477539063e-08, 3.0517578125e-05,
                             inf, -inf, nan, -0.0, 0.333251953125], dtype=torch.float16),
        "bf16": torch.tensor([[1.0, -2.0, 3.3895313892515355e38], [0.0078125, inf, -0.0]], dtype=torch.bfloat16),
        "f64": torch.tensor([0.1, -1e300, 2.5], dtype=torch.float64),
        "i64": torch.tensor([-3, 0, 1 << 40], dtype=torch.int64),
        "i32": torch.tensor(-7, dtype=torch.int32),  # a scalar, shape []
        "u8": torch.tensor([[0, 255], [7, 128]], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True], dtype=torch.bool),
        "empty": torch.zeros((0, 3), dtype=torch.float32),
    }
    save_file(tensors, os.path.join(HERE, "dtypes.safetensors"), metadata={"format": "pt"})


def written_files():
    edge = [
        0x3F801000,  # 1 + 2^-11: F16 tie, rounds to even (1.0)
        0x3F803000,  # 1 + 3*2^-11: F16 tie, rounds up
        0x3F801001,  # just above an F16 tie
        0x3F808000,  # 1 + 2^-8: BF16 tie, rounds to even (1.0)
        0x3F818000,  # BF16 tie, rounds up
        0x3F808001,  # just above a BF16 tie
        0x477FE000,  # 65504, the largest half
        0x477FF000,  # 65520: F16 tie between 65504 and inf -> inf
        0x477FEFFF,  # just below -> 65504
        0x4788B800,  # 70000 -> F16 inf
        0x7F7FFFFF,  # largest float -> BF16 inf, F16 inf
        0x322BCC77,  # 1e-8: below half an F16 subnormal step -> 0
        0x33000000,  # 2^-25: F16 tie between 0 and the smallest subnormal -> 0
        0x33400000,  # 1.5 * 2^-25 -> smallest subnormal
        0x37FBA882,  # 3e-5: F16 subnormal
        0x387FC000,  # 2^-14 - 2^-24: the largest F16 subnormal, exactly
        0x00000001,  # smallest float subnormal
        0x80000000,  # -0
        0x7F800000,  # inf
        0xFF800000,  # -inf
        0xC0490FDB,  # -pi
    ]
    rng = np.random.default_rng(7)
    tensors = {
        "edge": f32_bits(edge),
        "layer.weight": torch.from_numpy(rng.standard_normal((4, 5)).astype(np.float32)),
        "layer.bias": torch.from_numpy((rng.standard_normal(5) * 1000).astype(np.float32)),
        "scalar": torch.tensor(0.1, dtype=torch.float32),
    }
    meta = {"format": "pt"}  # one key: the Rust writer's HashMap order is random for more
    save_file(tensors, os.path.join(HERE, "written_f32.safetensors"), metadata=meta)
    save_file({k: v.to(torch.float16) for k, v in tensors.items()}, os.path.join(HERE, "written_f16.safetensors"), metadata=meta)
    save_file({k: v.to(torch.bfloat16) for k, v in tensors.items()}, os.path.join(HERE, "written_bf16.safetensors"), metadata=meta)


def lpips_header(shared):
    source = os.path.join(shared, "lpips-alex-randbackbone", "weights.safetensors")
    target = os.path.join(HERE, "..", "lpips-alex-randbackbone")
    os.makedirs(target, exist_ok=True)
    with open(source, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        f.seek(0)
        head = f.read(8 + n)
    with open(os.path.join(target, "weights.header.bin"), "wb") as f:
        f.write(head)
    header = json.loads(head[8:])
    keys = {k: {"dtype": v["dtype"], "shape": v["shape"]} for k, v in sorted(header.items()) if k != "__metadata__"}
    listing = {"file_length": os.path.getsize(source), "metadata": header.get("__metadata__", {}), "tensors": keys}
    lines = [f'  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}' for k, v in keys.items()]
    with open(os.path.join(target, "weights.keys.json"), "w") as f:
        f.write('{"file_length": %d, "metadata": %s, "tensors": {\n' % (listing["file_length"], json.dumps(listing["metadata"])))
        f.write(",\n".join(lines) + "\n}}\n")


if __name__ == "__main__":
    dtypes_file()
    written_files()
    if len(sys.argv) > 1:
        lpips_header(sys.argv[1])
