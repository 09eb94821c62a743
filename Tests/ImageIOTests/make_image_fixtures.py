#!/usr/bin/env python3
"""Writes the ImageIO test fixtures into Fixtures/ next to this script.

PNGs come from the small encoder below (zlib + struct, independent of libpng), covering
every colour type and bit depth, palettes with and without tRNS, and Adam7 interlacing;
each is checked by decoding it with Pillow. JPEGs come from Pillow. `expected.json` holds,
for each fixture, the `[C, H, W]` shape ImageFile.read must return and the samples in CHW
order as integers over `max`, so the expected float is `sample / max`. JPEG entries hold
Pillow's decoding (the test allows a small tolerance between decoders).

Run: python3 make_image_fixtures.py   (needs Pillow; the output is committed.)
"""
import io
import json
import os
import struct
import zlib

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "Fixtures")

GRAY, RGB, PALETTE, GRAY_ALPHA, RGBA = 0, 2, 3, 4, 6
CHANNELS = {GRAY: 1, RGB: 3, PALETTE: 1, GRAY_ALPHA: 2, RGBA: 4}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def pack_row(pixels, depth):
    """pixels: list of tuples of samples for one row."""
    samples = [s for p in pixels for s in p]
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    if depth == 8:
        return bytes(samples)
    per_byte = 8 // depth
    out = bytearray()
    for i in range(0, len(samples), per_byte):
        byte = 0
        group = samples[i : i + per_byte]
        for j, s in enumerate(group):
            byte |= s << (8 - depth * (j + 1))
        out.append(byte)
    return bytes(out)


def encode_png(rows, color_type, depth, palette=None, trns=None, interlace=False):
    """rows: height lists of width tuples of raw samples (palette indices for PALETTE)."""
    height, width = len(rows), len(rows[0])
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        xs, ys = range(x0, width, dx), range(y0, height, dy)
        if len(xs) == 0 or len(ys) == 0:
            continue
        for y in ys:
            raw += b"\x00" + pack_row([rows[y][x] for x in xs], depth)
    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 1 if interlace else 0))
    if palette is not None:
        png += chunk(b"PLTE", b"".join(bytes(entry) for entry in palette))
    if trns is not None:
        png += chunk(b"tRNS", trns)
    png += chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    png += chunk(b"IEND", b"")
    return png


def pattern(width, height, channels, maximum, seed):
    """Deterministic samples spread over [0, maximum], corners included."""
    rows = []
    for y in range(height):
        row = []
        for x in range(width):
            row.append(tuple((x * 7919 + y * 104729 + c * 15485863 + seed * 31337) % (maximum + 1) for c in range(channels)))
        rows.append(row)
    rows[0][0] = tuple(0 for _ in range(channels))
    rows[-1][-1] = tuple(maximum for _ in range(channels))
    return rows


def chw(rows, channels):
    return [rows[y][x][c] for c in range(channels) for y in range(len(rows)) for x in range(len(rows[0]))]


expected = {}


def save(name, data, shape, maximum, samples):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    expected[name] = {"shape": shape, "max": maximum, "samples": samples}


def flat(im):
    """A single-band image's samples in row-major order."""
    return list(getattr(im, "get_flattened_data", im.getdata)())


def pillow_samples(data, channels):
    """Pillow's decoding as CHW ints (8-bit for RGB(A) modes, raw for I;16 / 1 / L)."""
    im = Image.open(io.BytesIO(data))
    im.load()
    if channels == 1:
        return [int(v) for v in flat(im)], im.mode
    bands = [flat(band) for band in im.split()]
    if channels == 2 and len(bands) == 4:  # Pillow opens 16-bit gray + alpha as RGBA
        bands = [bands[0], bands[3]]
    return [int(v) for band in bands for v in band], im.mode


def png_fixture(name, color_type, depth, width=5, height=4, interlace=False, seed=0):
    channels = CHANNELS[color_type]
    maximum = (1 << depth) - 1
    rows = pattern(width, height, channels, maximum, seed)
    data = encode_png(rows, color_type, depth, interlace=interlace)
    samples = chw(rows, channels)
    # Check against an independent decoder.
    got, mode = pillow_samples(data, channels)
    if mode == "1":
        check = [255 if s else 0 for s in samples]
    elif depth < 8:
        check = [s * 255 // maximum for s in samples]
    elif depth == 16 and channels > 1:
        check = [s >> 8 for s in samples]  # Pillow reduces 16-bit colour to 8 bits
    else:
        check = samples
    assert got == check, (name, mode, got[:8], check[:8])
    save(name, data, [channels, height, width], maximum, samples)


def palette_fixture(name, with_trns, interlace=False):
    width, height = 5, 4
    palette = [(0, 0, 0), (255, 255, 255), (200, 30, 40), (17, 170, 68), (5, 6, 250), (128, 129, 130)]
    alphas = bytes([0, 255, 128, 7])  # shorter than the palette: the rest are opaque
    rows = [[((x + 2 * y) % len(palette),) for x in range(width)] for y in range(height)]
    data = encode_png(rows, PALETTE, 8, palette=palette, trns=alphas if with_trns else None, interlace=interlace)
    channels = 4 if with_trns else 3

    def colour(index):
        rgb = list(palette[index])
        if with_trns:
            rgb.append(alphas[index] if index < len(alphas) else 255)
        return tuple(rgb)

    expanded = [[colour(p[0]) for p in row] for row in rows]
    samples = chw(expanded, channels)
    im = Image.open(io.BytesIO(data)).convert("RGBA" if with_trns else "RGB")
    got = [v for band in im.split() for v in flat(band)]
    assert got == samples, name
    save(name, data, [channels, height, width], 255, samples)


def gray_trns_fixture(name):
    width, height = 5, 4
    rows = pattern(width, height, 1, 255, 3)
    transparent = rows[1][2][0]
    data = encode_png(rows, GRAY, 8, trns=struct.pack(">H", transparent))
    expanded = [[(p[0], 0 if p[0] == transparent else 255) for p in row] for row in rows]
    im = Image.open(io.BytesIO(data)).convert("LA")
    got = [v for band in im.split() for v in flat(band)]
    samples = chw(expanded, 2)
    assert got == samples, name
    save(name, data, [2, height, width], 255, samples)


def smooth(width, height, channels):
    return [[tuple(min(255, 40 + 12 * x + 9 * y + 50 * c) for c in range(channels)) for x in range(width)] for y in range(height)]


def jpeg_fixture(name, mode, width=16, height=16, **options):
    channels = {"L": 1, "RGB": 3}[mode]
    rows = smooth(width, height, channels)
    im = Image.new(mode, (width, height))
    im.putdata([p[0] if channels == 1 else p for row in rows for p in row])
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", **options)
    data = buffer.getvalue()
    decoded = Image.open(io.BytesIO(data))
    assert decoded.mode == mode
    got = [v for band in decoded.split() for v in flat(band)]
    save(name, data, [channels, height, width], 255, got)
    return rows


def main():
    os.makedirs(OUT, exist_ok=True)
    for depth in (1, 2, 4, 8, 16):
        png_fixture(f"gray{depth}.png", GRAY, depth, seed=depth)
    png_fixture("gray_alpha8.png", GRAY_ALPHA, 8, seed=5)
    png_fixture("gray_alpha16.png", GRAY_ALPHA, 16, seed=6)
    png_fixture("rgb8.png", RGB, 8, seed=7)
    png_fixture("rgb16.png", RGB, 16, seed=8)
    png_fixture("rgba8.png", RGBA, 8, seed=9)
    png_fixture("rgba16.png", RGBA, 16, seed=10)
    palette_fixture("palette8.png", with_trns=False)
    palette_fixture("palette8_trns.png", with_trns=True)
    gray_trns_fixture("gray8_trns.png")
    png_fixture("interlaced_rgb8.png", RGB, 8, width=11, height=10, interlace=True, seed=11)
    png_fixture("interlaced_gray1.png", GRAY, 1, width=11, height=10, interlace=True, seed=12)
    png_fixture("interlaced_rgba16.png", RGBA, 16, width=9, height=9, interlace=True, seed=13)

    jpeg_fixture("gray.jpg", "L", quality=95)
    jpeg_fixture("rgb.jpg", "RGB", quality=95, subsampling=0)
    jpeg_fixture("rgb420.jpg", "RGB", quality=90, subsampling=2)
    jpeg_fixture("progressive.jpg", "RGB", quality=90, progressive=True)

    cmyk = Image.new("CMYK", (8, 8), (10, 20, 30, 40))
    buffer = io.BytesIO()
    cmyk.save(buffer, "JPEG", quality=90)
    with open(os.path.join(OUT, "cmyk.jpg"), "wb") as f:
        f.write(buffer.getvalue())

    # Headers claiming 20000 x 20000 pixels: must be refused before any allocation.
    huge = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, RGB, 0, 0, 0))
    huge += chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    with open(os.path.join(OUT, "huge.png"), "wb") as f:
        f.write(huge)
    small = bytearray(open(os.path.join(OUT, "gray.jpg"), "rb").read())
    sof = small.index(b"\xff\xc0")
    small[sof + 5 : sof + 9] = struct.pack(">HH", 20000, 20000)
    with open(os.path.join(OUT, "huge.jpg"), "wb") as f:
        f.write(bytes(small))

    # Well-formed chunks (valid CRCs) around bad image data.
    header = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 5, 4, 8, RGB, 0, 0, 0))
    short_rows = zlib.compress(b"".join(b"\x00" + bytes(range(15)) for _ in range(2)))  # 2 of 4 rows
    with open(os.path.join(OUT, "short_idat.png"), "wb") as f:
        f.write(header + chunk(b"IDAT", short_rows) + chunk(b"IEND", b""))
    with open(os.path.join(OUT, "bad_zlib.png"), "wb") as f:
        f.write(header + chunk(b"IDAT", b"\x78\x9c" + bytes(range(7, 60, 3))) + chunk(b"IEND", b""))

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"), sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
