#!/usr/bin/env python3
"""Draws Kasa's application icon (a white K on a green rounded square) as RGBA PNGs.

Run from the project root: python3 scripts/make-icons.py. Uses only the standard library.
"""
import struct
import zlib
from pathlib import Path


def png(path: Path, size: int, pixel) -> None:
    rows = []
    for y in range(size):
        row = bytearray([0])  # filter type: none
        for x in range(size):
            row += bytes(pixel(x, y, size))
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def inside_square(u: float, v: float) -> bool:
    r = 0.2  # corner radius, in units of the side
    cx = min(max(u, r), 1 - r)
    cy = min(max(v, r), 1 - r)
    return (u - cx) ** 2 + (v - cy) ** 2 <= r * r


def inside_k(u: float, v: float) -> bool:
    if not (0.22 <= v <= 0.78):
        return False
    if 0.28 <= u <= 0.40:
        return True
    # Two strokes meeting the bar at mid height.
    t = 0.075
    upper = abs((u - 0.40) - (0.50 - v) * 0.62) <= t and v <= 0.52 and u >= 0.38
    lower = abs((u - 0.40) - (v - 0.50) * 0.62) <= t and v >= 0.48 and u >= 0.38
    return (upper or lower) and u <= 0.74


def pixel(x: int, y: int, size: int):
    n = 4  # supersampling
    square = k = 0
    for sy in range(n):
        for sx in range(n):
            u = (x + (sx + 0.5) / n) / size
            v = (y + (sy + 0.5) / n) / size
            if inside_square(u, v):
                square += 1
                if inside_k(u, v):
                    k += 1
    if square == 0:
        return (0, 0, 0, 0)
    f = k / square
    green = (47, 158, 102)
    rgb = tuple(round(g * (1 - f) + 255 * f) for g in green)
    return (*rgb, round(255 * square / (n * n)))


out = Path("icons")
out.mkdir(exist_ok=True)
for name, size in [("32x32.png", 32), ("128x128.png", 128), ("128x128@2x.png", 256), ("icon.png", 512)]:
    png(out / name, size, pixel)
    print("wrote", out / name)
