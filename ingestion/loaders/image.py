"""Images (PNG, JPEG, TIFF including multi-page, WebP, BMP) read by OCR; each TIFF page keeps
its page number.

Why frame by frame: a multi-page TIFF (a faxed or scanned document) can hold hundreds of pages;
one frame is decoded, read and dropped before the next, and a frame over the OCR's pixel budget
is scaled down first (JPEGs are decoded at the reduced size directly), so memory stays bounded
by one page. Photos are turned by their EXIF orientation before reading.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ingestion.loaders.registry import register
from ingestion.results import NotConfigured
from ingestion.sections import LoadError, Section

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from ingestion.ocr import Ocr, PageProgress


@register(".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ocr=True)
def load_image(path: Path, ocr: "Ocr | None" = None,
               progress: "PageProgress | None" = None) -> list[Section]:
    from ingestion.ocr import OcrMode

    if ocr is None or ocr.mode is OcrMode.NEVER:
        raise NotConfigured("images are read by OCR, which is off (ocr = never)" if ocr else
                            "images are read by OCR, which this pipeline has not been given")
    from PIL import Image, UnidentifiedImageError

    sections: list[Section] = []
    try:
        with Image.open(path) as image:
            n_frames = int(getattr(image, "n_frames", 1) or 1)
            for index in range(n_frames):
                image.seek(index)
                pixels = np.asarray(_upright_rgb(image, ocr.max_pixels))
                page = ocr.read(pixels)
                del pixels
                if progress is not None:
                    progress(index + 1, n_frames)
                if page.text.strip():
                    sections.append(Section(page.text, page=index + 1 if n_frames > 1 else None,
                                            meta=page.meta()))
    except LoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise LoadError(f"image too large to read safely: {' '.join(str(exc).split())}") from exc
    except (UnidentifiedImageError, OSError, EOFError, SyntaxError, ValueError) as exc:
        raise LoadError(f"not a readable image: {' '.join(str(exc).split()) or type(exc).__name__}"
                        ) from exc
    if not sections:
        raise LoadError(f"no text found by OCR in {n_frames} image page(s)")
    return sections


def _upright_rgb(image: "PILImage.Image", max_pixels: int) -> "PILImage.Image":
    """The current frame as RGB, turned by its EXIF orientation, within `max_pixels`."""
    from PIL import Image, ImageOps

    width, height = image.size
    factor = min(1.0, (max_pixels / max(width * height, 1)) ** 0.5)
    if factor < 1.0 and image.format == "JPEG":
        image.draft("RGB", (int(width * factor), int(height * factor)))  # decode it smaller
    frame = ImageOps.exif_transpose(image)
    if frame.mode != "RGB":
        frame = frame.convert("RGB")
    area = frame.width * frame.height
    if area > max_pixels:
        factor = (max_pixels / area) ** 0.5
        frame = frame.resize((max(1, int(frame.width * factor)), max(1, int(frame.height * factor))),
                             Image.Resampling.LANCZOS)
    return frame
