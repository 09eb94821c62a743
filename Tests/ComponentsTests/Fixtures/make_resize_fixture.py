"""Writes the expected values of DataSourceTests.resizeMatchesPILBilinear: PIL's bilinear
resize (antialiased triangle filter) in float mode "F", one channel at a time.

    python3 Tests/ComponentsTests/Fixtures/make_resize_fixture.py > Tests/ComponentsTests/Fixtures/resize-pil.json
"""
import json
import numpy as np
import PIL
from PIL import Image

def image(c, h, w):
    return np.array([[[((k * 7 + y * 3 + x * 5) % 11) / 10 for x in range(w)] for y in range(h)] for k in range(c)], dtype=np.float32)

cases = []
for (h, w), (oh, ow) in [((13, 9), (5, 4)), ((4, 3), (7, 5)), ((10, 16), (6, 6))]:
    src = image(3, h, w)
    out = np.stack([np.asarray(Image.fromarray(src[k], mode="F").resize((ow, oh), Image.BILINEAR)) for k in range(3)])
    cases.append({"input": [3, h, w], "output": [3, oh, ow], "expected": [round(float(v), 7) for v in out.ravel()]})
print(json.dumps({"pil": PIL.__version__, "cases": cases}))
