"""Images for Grounding-v0: opening originals safely, Qwen's smart resize, and crop-and-resize.

Everything here is pure given its inputs. Originals are opened lazily (only the header is read
before the size checks), converted to RGB whatever their mode (RGBA and LA composited on white,
CMYK, greyscale, palette and 16-bit modes converted), and refused with a :class:`ConfigError`
naming the file when they are larger than ``max_original_pixels``, more elongated than
:data:`MAX_ASPECT` or a decompression bomb by Pillow's own limit.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr.errors import ConfigError

__all__ = ["FACTOR", "MAX_ASPECT", "MAX_ORIGINAL_PIXELS", "MAX_PIXELS", "MIN_PIXELS", "MAX_UPSCALE", "View",
           "crop_view", "open_image", "smart_resize", "to_rgb"]

FACTOR = 28
"""Sides of every image shown to the model are multiples of this (Qwen2.5-VL: patch 14 x merge 2)."""
MAX_PIXELS = 1280 * FACTOR * FACTOR
"""Default pixel budget of one image shown to the model (1,003,520: Qwen2.5-VL's and MGPO's)."""
MIN_PIXELS = 256 * FACTOR * FACTOR
"""Crops smaller than this are upscaled towards it (MGPO's 200,704), at most :data:`MAX_UPSCALE` times."""
MAX_UPSCALE = 4.0
MAX_ASPECT = 200.0
"""Longest over shortest side above which an original is refused (Qwen's smart resize raises there too)."""
MAX_ORIGINAL_PIXELS = 8192 * 8192
"""Default largest original accepted (an 8K-class image; HR-Bench 8K is 7680 x 4320)."""


def smart_resize(height: int, width: int, *, factor: int = FACTOR, min_pixels: int = MIN_PIXELS,
                 max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """Qwen's smart resize: sides rounded to multiples of ``factor``, area within ``[min_pixels, max_pixels]``.

    Rounds each side to the nearest multiple (at least ``factor``); when the area is then above
    ``max_pixels`` the sides are scaled down and floored to multiples, below ``min_pixels`` scaled up
    and ceiled, so the aspect ratio is kept as closely as the grid allows.
    """
    if height < 1 or width < 1:
        raise ConfigError(f"an image needs positive sides, got {width}x{height}")
    if max(height, width) / min(height, width) > MAX_ASPECT:
        raise ConfigError(f"aspect ratio {max(height, width) / min(height, width):.0f} of a {width}x{height} image "
                          f"is over {MAX_ASPECT:.0f}; crop or pad it to a less elongated shape")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def to_rgb(img: Any) -> Any:
    """``img`` as an RGB image: transparency composited on white, every other mode converted."""
    from PIL import Image

    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit greyscale: scale to 8 bits
        return img.point(lambda v: v / 256).convert("L").convert("RGB")
    return img.convert("RGB")


def open_image(source: Any, *, where: str = "image", max_pixels: int = MAX_ORIGINAL_PIXELS) -> Any:
    """Open ``source`` (a path, bytes, or a PIL image) as a loaded RGB image, checking its size first.

    Raises :class:`ConfigError` (naming ``where``) for a missing or unreadable file, an image over
    ``max_pixels`` or over Pillow's decompression-bomb limit, and one more elongated than :data:`MAX_ASPECT`.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        img = source
    else:
        if isinstance(source, (bytes, bytearray)):
            fp: Any = io.BytesIO(source)
        elif isinstance(source, (str, os.PathLike)):
            fp = Path(source)
            if not fp.is_file():
                raise ConfigError(f"{where}: no such image file {str(fp)!r}; check the task's image path "
                                  "(relative paths are resolved against the task file's folder or image_root)")
        else:
            raise ConfigError(f"{where}: expected an image path, bytes or a PIL image, got {type(source).__name__}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(fp)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ConfigError(f"{where}: refused as a decompression bomb by Pillow ({e}); "
                              "downscale the image before loading it") from e
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise ConfigError(f"{where}: not a readable image ({type(e).__name__}: {e})") from e
    w, h = img.size
    if w < 1 or h < 1:
        raise ConfigError(f"{where}: the image is empty ({w}x{h})")
    if w * h > max_pixels:
        raise ConfigError(f"{where}: {w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} "
                          "(max_original_pixels); downscale it or raise the limit")
    if max(w, h) / min(w, h) > MAX_ASPECT:
        raise ConfigError(f"{where}: aspect ratio {max(w, h) / min(w, h):.0f} ({w}x{h}) is over {MAX_ASPECT:.0f}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
            return to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ConfigError(f"{where}: refused as a decompression bomb by Pillow ({e})") from e
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt data
        raise ConfigError(f"{where}: the image data is corrupt or truncated ({type(e).__name__}: {e})") from e


@dataclass(frozen=True, slots=True)
class View:
    """An image shown to the model and where it comes from in the original.

    ``region`` is ``(x1, y1, x2, y2)`` in original pixels (the whole image for the opening view).
    """

    image: Any
    region: tuple[int, int, int, int]

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def crop_view(original: Any, region: tuple[int, int, int, int], *, max_pixels: int = MAX_PIXELS,
              min_pixels: int = MIN_PIXELS, max_upscale: float = MAX_UPSCALE, factor: int = FACTOR) -> View:
    """Cut ``region`` (original pixels, ``x2 > x1``, ``y2 > y1``) from ``original`` at full resolution and
    resize it into the pixel budget: BICUBIC, sides multiples of ``factor``, upscaled at most ``max_upscale``
    times. The whole image as ``region`` gives the opening view.

    Only the cut region is decoded and resampled (``Image.resize(box=...)`` with ``reducing_gap`` for large
    reductions), so a step on a 4K original costs a few milliseconds.
    """
    from PIL import Image

    x1, y1, x2, y2 = region
    w, h = x2 - x1, y2 - y1
    th, tw = smart_resize(h, w, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    scale = math.sqrt(th * tw / (h * w))
    if scale > max_upscale:  # keep the crop honest: no more than max_upscale times its real resolution
        th = max(factor, math.floor(h * max_upscale / factor) * factor)
        tw = max(factor, math.floor(w * max_upscale / factor) * factor)
    reducing = 1.5 if w > 1.5 * tw else None
    img = original.resize((tw, th), Image.Resampling.BICUBIC, box=(x1, y1, x2, y2), reducing_gap=reducing)
    return View(img, (x1, y1, x2, y2))
