"""Image generation bodies: Titan Image Generator and Nova Canvas; Stability SDXL; SD3.5 and Stable Image.

* ``amazon-image`` (Titan Image Generator G1 v1/v2, Nova Canvas): ``taskType``
  (``TEXT_IMAGE``, ``COLOR_GUIDED_GENERATION``, ``IMAGE_VARIATION``, ``INPAINTING``,
  ``OUTPAINTING``, ``BACKGROUND_REMOVAL``), its params (``textToImageParams.text``,
  ``negativeText``...), ``imageGenerationConfig`` (``numberOfImages`` 1-5, ``width``,
  ``height``, ``cfgScale``, ``seed``, ``quality``) -> ``{"images": [base64 PNG], "error": null}``.
  Titan takes the sizes of its documented list; Nova Canvas any width and height from 320 to
  4,096 pixels, divisible by 16, at most 4,194,304 pixels, aspect ratio within 1:4 and 4:1.
* ``stability-sdxl``: ``text_prompts`` (``text``, ``weight``), ``width``/``height`` (SDXL's
  sizes), ``cfg_scale``, ``seed``, ``steps``, ``style_preset``, ``samples`` -> ``{"result":
  "success", "artifacts": [{"seed", "base64", "finishReason"}]}``.
* ``stability-sd3`` (SD3.5 Large, Stable Image Core/Ultra): ``prompt``, ``negative_prompt``,
  ``mode``, ``aspect_ratio``, ``seed``, ``output_format`` -> ``{"seeds", "finish_reasons", "images"}``.

The pictures are the labelled stand-in of :mod:`labkit.bedrock.images`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from .. import images
from ..catalog import FoundationModel
from ..errors import malformed, validation
from . import common

TITAN_SIZES = {(1024, 1024), (768, 768), (512, 512), (768, 1152), (384, 576), (1152, 768), (576, 384), (768, 1280),
               (384, 640), (1280, 768), (640, 384), (896, 1152), (448, 576), (1152, 896), (576, 448), (768, 1408),
               (384, 704), (1408, 768), (704, 384), (640, 1408), (320, 704), (1408, 640), (704, 320), (1152, 640),
               (1173, 640)}
SDXL_SIZES = {(1024, 1024), (1152, 896), (1216, 832), (1344, 768), (1536, 640), (640, 1536), (768, 1344), (832, 1216),
              (896, 1152)}
SD3_RATIOS = {"1:1": (1024, 1024), "16:9": (1344, 768), "21:9": (1536, 640), "2:3": (832, 1216), "3:2": (1216, 832),
              "4:5": (896, 1120), "5:4": (1120, 896), "9:16": (768, 1344), "9:21": (640, 1536)}
TASKS = ("TEXT_IMAGE", "COLOR_GUIDED_GENERATION", "IMAGE_VARIATION", "INPAINTING", "OUTPAINTING",
         "BACKGROUND_REMOVAL", "VIRTUAL_TRY_ON")
SDXL_STYLES = ("3d-model", "analog-film", "anime", "cinematic", "comic-book", "digital-art", "enhance", "fantasy-art",
               "isometric", "line-art", "low-poly", "modeling-compound", "neon-punk", "origami", "photographic",
               "pixel-art", "tile-texture")


@dataclass
class ImageRequest:
    prompt: str
    width: int
    height: int
    count: int = 1
    seed: int = 0
    negative: str = ""
    task: str = "TEXT_IMAGE"
    colors: list[str] = field(default_factory=list)
    source: bytes = b""
    fmt: str = "png"
    quality: str = "standard"
    native: dict[str, Any] = field(default_factory=dict)
    model_id: str = ""

    def draw(self) -> list[bytes]:
        return [images.draw(self.prompt, self.width, self.height, seed=self.seed + i, negative=self.negative,
                            task=f"{self.model_id} {self.task}", colors=self.colors, source=self.source,
                            fmt=self.fmt)
                for i in range(self.count)]


# --- Titan Image Generator and Nova Canvas ------------------------------------------------------------


def amazon_parse(body: dict[str, Any], model: FoundationModel) -> ImageRequest:
    canvas = model.model_id.startswith("amazon.nova-canvas")
    task = common.enum(body.get("taskType"), TASKS if canvas else TASKS[:6], "#/taskType")
    params_key = {"TEXT_IMAGE": "textToImageParams", "COLOR_GUIDED_GENERATION": "colorGuidedGenerationParams",
                  "IMAGE_VARIATION": "imageVariationParams", "INPAINTING": "inPaintingParams",
                  "OUTPAINTING": "outPaintingParams", "BACKGROUND_REMOVAL": "backgroundRemovalParams",
                  "VIRTUAL_TRY_ON": "virtualTryOnParams"}[task]
    common.keys(body, {"taskType", params_key, "imageGenerationConfig"}, ("taskType", params_key))
    params = body[params_key]
    max_text = 1024 if canvas else 512
    text = params.get("text", "")
    if task in ("TEXT_IMAGE", "COLOR_GUIDED_GENERATION"):
        text = common.text(params.get("text"), f"#/{params_key}/text", 1)
    if len(text) > max_text:
        raise malformed(f"#/{params_key}/text: expected maxLength: {max_text}, actual: {len(text)}")
    source = b""
    for key in ("image", "referenceImage", "sourceImage"):
        if key in params:
            source = common.b64(params[key], f"#/{params_key}/{key}")
    if not source and "images" in params:
        source = b"".join(common.b64(x, f"#/{params_key}/images") for x in params["images"])
    if task not in ("TEXT_IMAGE", "COLOR_GUIDED_GENERATION") and not source:
        raise malformed(f"#/{params_key}: required key [image] not found")
    colors = list(params.get("colors") or [])
    if task == "COLOR_GUIDED_GENERATION":
        if not 1 <= len(colors) <= 10:
            raise malformed(f"#/{params_key}/colors: expected between 1 and 10 hex colors")
        for i, c in enumerate(colors):
            if not (isinstance(c, str) and len(c) == 7 and c[0] == "#"):
                raise malformed(f"#/{params_key}/colors/{i}: {c} is not a hex color (#RRGGBB)")
    config = body.get("imageGenerationConfig") or {}
    path = "#/imageGenerationConfig"
    common.keys(config, {"numberOfImages", "height", "width", "cfgScale", "seed", "quality"}, (), path)
    common.number(config, "numberOfImages", path, 1, 5, integer=True)
    common.number(config, "cfgScale", path, 1.1, 10)
    common.number(config, "seed", path, 0, 858993459 if canvas else 2147483646, integer=True)
    quality = common.enum(config.get("quality", "standard"), ("standard", "premium"), f"{path}/quality")
    if source and task not in ("TEXT_IMAGE", "COLOR_GUIDED_GENERATION"):
        default = images.size_of(source)
    else:
        default = (1024, 1024) if canvas else (1024, 1024)
    width, height = config.get("width", default[0]), config.get("height", default[1])
    common.number(config, "width", path, 320, 4096, integer=True)
    common.number(config, "height", path, 320, 4096, integer=True)
    if canvas:
        if width % 16 or height % 16 or width * height > model.max_pixels or not 0.25 <= width / height <= 4:
            raise validation("The image size is invalid: width and height must be divisible by 16, at most "
                             "4,194,304 pixels in all, with an aspect ratio between 1:4 and 4:1.")
    elif (width, height) not in TITAN_SIZES and task in ("TEXT_IMAGE", "COLOR_GUIDED_GENERATION"):
        raise validation(f"The image size {width}x{height} is not supported. Choose one of the supported sizes "
                         "(1024x1024, 768x768, 512x512, 1152x768, 768x1152, ...).")
    return ImageRequest(text, width, height, config.get("numberOfImages", 1), config.get("seed", 42),
                        str(params.get("negativeText", "")), task, colors, source, "png", quality)


def amazon_body(req: ImageRequest, pictures: list[bytes], model: FoundationModel) -> dict[str, Any]:
    return {"images": [base64.b64encode(p).decode() for p in pictures], "error": None}


# --- Stability AI ---------------------------------------------------------------------------------------


def sdxl_parse(body: dict[str, Any], model: FoundationModel) -> ImageRequest:
    common.keys(body, {"text_prompts", "height", "width", "cfg_scale", "clip_guidance_preset", "sampler", "samples",
                       "seed", "steps", "style_preset", "extras", "init_image", "init_image_mode", "image_strength",
                       "step_schedule_start", "step_schedule_end"}, ("text_prompts",))
    prompts = body["text_prompts"]
    if not isinstance(prompts, list) or not prompts:
        raise malformed("#/text_prompts: expected minItems: 1")
    positive: list[str] = []
    negative: list[str] = []
    for i, p in enumerate(prompts):
        t = common.text((p or {}).get("text"), f"#/text_prompts/{i}/text", 1)
        (negative if float(p.get("weight", 1.0)) < 0 else positive).append(t)
    common.number(body, "cfg_scale", "#", 0, 35)
    common.number(body, "seed", "#", 0, 4294967295, integer=True)
    common.number(body, "steps", "#", 10, 50, integer=True)
    common.number(body, "samples", "#", 1, 1, integer=True)
    if "style_preset" in body:
        common.enum(body["style_preset"], SDXL_STYLES, "#/style_preset")
    source = common.b64(body["init_image"], "#/init_image") if "init_image" in body else b""
    width, height = body.get("width", 1024), body.get("height", 1024)
    if source:
        width, height = images.size_of(source)
    elif (width, height) not in SDXL_SIZES:
        raise validation(f"invalid_dimensions: {width}x{height} is not an allowed SDXL size (1024x1024, 1152x896, "
                         "896x1152, 1216x832, 832x1216, 1344x768, 768x1344, 1536x640, 640x1536).")
    return ImageRequest(" ".join(positive), width, height, 1, body.get("seed", 0), " ".join(negative),
                        "IMAGE_TO_IMAGE" if source else "TEXT_IMAGE", source=source,
                        native={"seed": body.get("seed", 0)})


def sdxl_body(req: ImageRequest, pictures: list[bytes], model: FoundationModel) -> dict[str, Any]:
    return {"result": "success", "artifacts": [{"seed": req.seed + i, "base64": base64.b64encode(p).decode(),
                                                 "finishReason": "SUCCESS"} for i, p in enumerate(pictures)]}


def sd3_parse(body: dict[str, Any], model: FoundationModel) -> ImageRequest:
    common.keys(body, {"prompt", "negative_prompt", "mode", "aspect_ratio", "seed", "output_format", "image",
                       "strength", "style_preset"}, ("prompt",))
    prompt = common.text(body["prompt"], "#/prompt", 1)
    if len(prompt) > 10000:
        raise malformed(f"#/prompt: expected maxLength: 10000, actual: {len(prompt)}")
    mode = common.enum(body.get("mode", "text-to-image"), ("text-to-image", "image-to-image"), "#/mode")
    fmt = common.enum(body.get("output_format", "png"), ("png", "jpeg", "webp"), "#/output_format")
    common.number(body, "seed", "#", 0, 4294967294, integer=True)
    common.number(body, "strength", "#", 0, 1)
    source = b""
    if mode == "image-to-image":
        if "image" not in body:
            raise malformed("#: required key [image] not found")
        source = common.b64(body["image"], "#/image")
        width, height = images.size_of(source)
    else:
        ratio = common.enum(body.get("aspect_ratio", "1:1"), tuple(SD3_RATIOS), "#/aspect_ratio")
        width, height = SD3_RATIOS[ratio]
    return ImageRequest(prompt, width, height, 1, body.get("seed", 0), str(body.get("negative_prompt", "")),
                        mode, source=source, fmt=fmt)


def sd3_body(req: ImageRequest, pictures: list[bytes], model: FoundationModel) -> dict[str, Any]:
    return {"seeds": [req.seed], "finish_reasons": [None], "images": [base64.b64encode(p).decode() for p in pictures]}
