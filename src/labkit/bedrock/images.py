"""The offline stand-in for image generation: a picture drawn from the prompt's hash, labelled.

No image model runs here. Titan Image Generator, Nova Canvas and the Stability models are
answered with a deterministic, procedurally drawn image: the SHA-256 of the prompt, the
negative prompt, the seed and the task picks a background gradient, a palette (or the
request's ``colors``) and a few shapes; the same request always gives the same pixels, a
different seed a different image. A band across the bottom reads "labkit offline stand-in",
and the PNG carries a ``labkit`` text chunk saying so. The image has the requested size
and format (PNG, JPEG, WebP), so code that decodes, resizes or stores it runs as on AWS.
"""

from __future__ import annotations

import hashlib
import io
import struct

import numpy as np

LABEL = "labkit offline stand-in"


def _palette(digest: bytes, colors: list[str] | None) -> list[tuple[int, int, int]]:
    if colors:
        out = []
        for c in colors:
            c = c.lstrip("#")
            out.append((int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)))
        return out
    return [tuple(digest[i:i + 3]) for i in range(0, 15, 3)]  # type: ignore[misc]


def draw(prompt: str, width: int, height: int, *, seed: int = 0, negative: str = "", task: str = "TEXT_IMAGE",
         colors: list[str] | None = None, source: bytes = b"", fmt: str = "png") -> bytes:
    """The stand-in image for a request, encoded as ``fmt`` (png, jpeg or webp)."""
    from PIL import Image, ImageDraw, PngImagePlugin

    digest = hashlib.sha256("\x1f".join([task, prompt, negative, str(seed), ",".join(colors or [])]).encode()
                            + hashlib.sha256(source).digest()).digest()
    palette = _palette(digest, colors)
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    a, b = np.array(palette[0], float), np.array(palette[1 % len(palette)], float)
    angle = rng.uniform(0, np.pi)
    ys, xs = np.mgrid[0:height, 0:width]
    t = (np.cos(angle) * xs / max(width, 1) + np.sin(angle) * ys / max(height, 1))
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-9)
    pixels = (a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]).astype(np.uint8)
    img = Image.fromarray(pixels, "RGB")
    pen = ImageDraw.Draw(img)
    for i in range(3 + digest[20] % 5):
        color = palette[(i + 2) % len(palette)]
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.05, 0.25) * min(width, height)
        box = [x0 - r, y0 - r, x0 + r, y0 + r]
        (pen.ellipse if digest[21 + i] % 2 else pen.rectangle)(box, fill=color)
    band = max(12, height // 16)
    pen.rectangle([0, height - band, width, height], fill=(20, 20, 20))
    pen.text((6, height - band + (band - 10) // 2), LABEL, fill=(240, 240, 240))
    out = io.BytesIO()
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text("labkit", "offline stand-in image drawn from the prompt's hash, not a generative model")
        img.save(out, "PNG", pnginfo=info)
    else:
        img.save(out, {"jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}[fmt])
    return out.getvalue()


def size_of(data: bytes) -> tuple[int, int]:
    """(width, height) of an encoded image (for image-to-image tasks that keep the input's size)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">II", data[16:24])
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return img.size
