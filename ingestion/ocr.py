"""OCR: a page image becomes text lines with a confidence each, turned upright, in reading order.

Why RapidOCR (`rapidocr-onnxruntime`): its PyPI wheel carries the three PP-OCRv4 ONNX models it
needs (text detection, line direction, recognition; 15 MB), and onnxruntime runs them on the CPU
from wheels too, so `pip install` is the whole set-up and nothing is downloaded at run time. The
alternative, tesseract, is a Debian package (`tesseract-ocr` plus language data) that needs apt
and root outside the two-command set-up, and a pytesseract wrapper that shells out to it.

Why this module and not the bare engine: the engine reads lines, not pages. Here a page that is
turned (a landscape scan, a page upside down) is recognised from the direction of its lines and
read again upright, a page read with low confidence is tried at the other three turns, and lines
are put in reading order with columns found from the gaps between boxes (a two-column page is
read down the left column, then down the right, with full-width lines such as titles between).

One job only: pixels in, `OcrPage` out. Which pages need OCR, and how a PDF page becomes pixels,
is the loaders' business (ingestion/loaders/pdf.py, ingestion/loaders/image.py). The recogniser
is a part (`Recogniser`), passed in, so a caller can wrap it (count it, time it) or replace it.
"""

from __future__ import annotations

import threading
import unicodedata
from dataclasses import dataclass, field
from enum import Enum
from statistics import median
from typing import Any, Callable, Protocol, Sequence

import numpy as np

OCR_ENGINE = "rapidocr-onnxruntime 1.4.4 (PP-OCRv4)"


class OcrMode(str, Enum):
    """When PDF pages are read by OCR: `auto` (pages without a usable text layer), `always`
    (every page, the text layer is ignored) or `never` (images then fail, as before OCR)."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"

    @classmethod
    def names(cls) -> list[str]:
        return [m.value for m in cls]

    @classmethod
    def parse(cls, value: "str | OcrMode") -> "OcrMode":
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown OCR mode {value!r}; valid: {', '.join(cls.names())}") from None


@dataclass(frozen=True)
class OcrLine:
    """One recognised line: its text, the recogniser's confidence (0-1), where it sits
    (x0, y0, x1, y1 in pixels of the image it was read from) and the clockwise turn (0, 90,
    180, 270) that makes its text upright in that image."""

    text: str
    confidence: float
    box: tuple[float, float, float, float]
    turn: int = 0


class Recogniser(Protocol):
    """Finds and reads text lines in an RGB image (uint8, height x width x 3), in any order,
    with every line it found (confidence unfiltered)."""

    def recognise(self, image: np.ndarray) -> list[OcrLine]: ...


class RapidOcrRecogniser:
    """RapidOCR's detector, direction classifier and recogniser, loaded on first use (about a
    second), with each line's turn read off the classifier (the engine's own call hides it)."""

    def __init__(self, threads: int = 0):
        self.threads = threads  # onnxruntime intra-op threads; 0 = all cores
        self._engine: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"threads": self.threads}  # a worker process loads its own models

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    @property
    def engine(self) -> Any:
        with self._lock:
            if self._engine is None:
                from rapidocr_onnxruntime import RapidOCR

                kwargs: dict[str, Any] = {}
                if self.threads > 0:
                    kwargs["intra_op_num_threads"] = self.threads
                self._engine = RapidOCR(**kwargs)
            return self._engine

    def recognise(self, image: np.ndarray) -> list[OcrLine]:
        engine = self.engine
        bgr = np.ascontiguousarray(image[..., ::-1])  # the models were trained on OpenCV's BGR
        raw_h, raw_w = bgr.shape[:2]
        img, ratio_h, ratio_w = engine.preprocess(bgr)
        record: dict[str, Any] = {"preprocess": {"ratio_h": ratio_h, "ratio_w": ratio_w}}
        img, record = engine.maybe_add_letterbox(img, record)
        boxes, _ = engine.auto_text_det(img)
        if boxes is None or len(boxes) == 0:
            return []
        crops = engine.get_crop_img_list(img, boxes)
        # The engine turns a crop 90 degrees counter-clockwise when it is tall (height >= 1.5 x
        # width), then the classifier flips crops it finds upside down: together they say how
        # the line lies on the page.
        tall = [_is_tall(box) for box in boxes]
        crops, directions, _ = engine.text_cls(crops)
        threshold = engine.text_cls.cls_thresh
        flipped = [("180" in str(label) and float(score) > threshold) for label, score in directions]
        results, _ = engine.text_rec(crops, False)
        boxes = engine._get_origin_points(boxes, record, raw_h, raw_w)
        lines = []
        for box, is_tall, is_flipped, result in zip(boxes, tall, flipped, results):
            # NFKC: the recogniser's Chinese-trained alphabet writes fullwidth "（" and "；".
            text, confidence = unicodedata.normalize("NFKC", str(result[0])).strip(), float(result[1])
            if not text:
                continue
            xs, ys = box[:, 0], box[:, 1]
            turn = (270 if is_flipped else 90) if is_tall else (180 if is_flipped else 0)
            lines.append(OcrLine(text, confidence, (float(xs.min()), float(ys.min()),
                                                    float(xs.max()), float(ys.max())), turn))
        return lines


def _is_tall(points: np.ndarray) -> bool:
    width = max(np.linalg.norm(points[0] - points[1]), np.linalg.norm(points[2] - points[3]))
    height = max(np.linalg.norm(points[0] - points[3]), np.linalg.norm(points[1] - points[2]))
    return width > 0 and height / width >= 1.5


@dataclass
class OcrPage:
    """The text of one page image: lines in reading order, grouped in rows (`rows`), the turn the
    image was given to read it, and its size after that turn."""

    rows: list[list[OcrLine]] = field(default_factory=list)
    rotation: int = 0
    width: int = 0
    height: int = 0

    @property
    def lines(self) -> list[OcrLine]:
        return [line for row in self.rows for line in row]

    @property
    def text(self) -> str:
        return "\n".join(" ".join(line.text for line in row) for row in self.rows)

    @property
    def confidence(self) -> float:
        """Mean line confidence weighted by characters (0 for an empty page)."""
        lines = self.lines
        chars = sum(len(line.text) for line in lines)
        return sum(line.confidence * len(line.text) for line in lines) / chars if chars else 0.0

    def meta(self) -> dict[str, Any]:
        """What a `Section` keeps of the OCR: engine, turn, and per-line confidence in text order."""
        return {"ocr": {"engine": OCR_ENGINE, "rotation": self.rotation,
                        "confidence": round(self.confidence, 4),
                        "line_confidences": [round(line.confidence, 4) for line in self.lines]}}


class Ocr:
    """Reads page images: upright, in reading order, lines under `min_confidence` left out.

    `dpi` and `max_pixels` tell loaders how to rasterise a page (one at a time): 200 DPI reads
    9-10 pt print with its word spaces (150 DPI lost spaces and whole lines on a dense page), and
    the pixel cap bounds memory for oversized pages (an A4 page at 200 DPI is 3.9 MP).
    """

    def __init__(self, recogniser: Recogniser | None = None, *, mode: OcrMode | str = OcrMode.AUTO,
                 dpi: int = 200, max_pixels: int = 6_000_000, min_confidence: float = 0.5,
                 retry_below: float = 0.6):
        self.recogniser = recogniser if recogniser is not None else RapidOcrRecogniser()
        self.mode = OcrMode.parse(mode)
        self.dpi = dpi
        self.max_pixels = max_pixels
        self.min_confidence = min_confidence
        self.retry_below = retry_below  # a page read with less confidence is tried at other turns

    def read(self, image: np.ndarray) -> OcrPage:
        """The page's text. `image`: RGB (or grey) uint8 pixels."""
        image = _as_rgb(image)
        first = self.recogniser.recognise(image)
        if not first:
            return OcrPage(rotation=0, width=image.shape[1], height=image.shape[0])
        best_turn, best_lines = 0, first
        tried = {0}
        for _ in range(2):
            # Most lines lie turned: read the page again upright. Kept unless it reads clearly
            # worse (an upside-down page reads as well line by line, but in reverse order), and
            # checked again: a sideways line's direction can be misjudged by half a turn.
            turn = _dominant_turn(best_lines)
            if not turn:
                break
            turn = (best_turn + turn) % 360
            if turn in tried:
                break
            tried.add(turn)
            lines = self.recogniser.recognise(_turn(image, turn))
            if _score(lines, self.min_confidence) < 0.9 * _score(best_lines, self.min_confidence):
                break
            best_turn, best_lines = turn, lines
        if _mean_confidence(best_lines) < self.retry_below:
            for turn in (90, 180, 270):
                if turn in tried:
                    continue
                lines = self.recogniser.recognise(_turn(image, turn))
                if _score(lines, self.min_confidence) > _score(best_lines, self.min_confidence):
                    best_turn, best_lines = turn, lines
        upright = _turn(image, best_turn) if best_turn else image
        kept = [line for line in best_lines if line.confidence >= self.min_confidence]
        return OcrPage(reading_order(kept, upright.shape[1]), best_turn,
                       width=upright.shape[1], height=upright.shape[0])

    def scale_for(self, width_pt: float, height_pt: float) -> float:
        """Pixels per PDF point for a page of this size: `dpi`, lowered to stay in `max_pixels`."""
        scale = self.dpi / 72
        area = max(width_pt * height_pt, 1.0)
        if area * scale * scale > self.max_pixels:
            scale = (self.max_pixels / area) ** 0.5
        return scale


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:
        return image[:, :, :3]
    return image


def _turn(image: np.ndarray, clockwise: int) -> np.ndarray:
    """The image turned clockwise by 0, 90, 180 or 270 degrees."""
    return np.ascontiguousarray(np.rot90(image, k=-(clockwise // 90) % 4))


def _dominant_turn(lines: Sequence[OcrLine]) -> int:
    """The turn most of the text (by characters) says the page needs, when it is over half."""
    votes: dict[int, int] = {}
    for line in lines:
        votes[line.turn] = votes.get(line.turn, 0) + max(len(line.text), 1)
    turn, weight = max(votes.items(), key=lambda item: item[1])
    return turn if turn and weight > sum(votes.values()) / 2 else 0


def _score(lines: Sequence[OcrLine], min_confidence: float) -> float:
    """Confident characters read: how a reading at one turn is compared with another."""
    return sum(line.confidence * len(line.text) for line in lines if line.confidence >= min_confidence)


def _mean_confidence(lines: Sequence[OcrLine]) -> float:
    chars = sum(len(line.text) for line in lines)
    return sum(line.confidence * len(line.text) for line in lines) / chars if chars else 0.0


# --- reading order ---------------------------------------------------------------------------

def reading_order(lines: Sequence[OcrLine], page_width: float) -> list[list[OcrLine]]:
    """Rows of lines in reading order: columns left to right (each top to bottom), with lines
    that span columns (titles, full-width paragraphs) closing the band of columns above them."""
    if not lines:
        return []
    gutters = find_gutters(lines, page_width)
    if not gutters:
        return _rows(lines)
    edges = [0.0, *gutters, float(page_width)]
    slack = 0.01 * page_width

    def column(line: OcrLine) -> int:
        x0, _, x1, _ = line.box
        for i in range(len(edges) - 1):
            if x0 >= edges[i] - slack and x1 <= edges[i + 1] + slack:
                return i
        return -1  # spans a gutter

    out: list[list[OcrLine]] = []
    band: dict[int, list[OcrLine]] = {}

    def close_band() -> None:
        for i in sorted(band):
            out.extend(_rows(band[i]))
        band.clear()

    for line in sorted(lines, key=lambda ln: (ln.box[1], ln.box[0])):
        i = column(line)
        if i < 0:
            close_band()
            out.append([line])
        else:
            band.setdefault(i, []).append(line)
    close_band()
    return out


def find_gutters(lines: Sequence[OcrLine], page_width: float) -> list[float]:
    """x positions of the vertical gaps between text columns: a gap in the middle 70% of the
    page that (almost) no column-width line crosses, with lines side by side on both sides of
    it. A few crossing lines (a centred title, a caption) are allowed; they read as spanning."""
    width = float(page_width)
    narrow = [ln for ln in lines if (ln.box[2] - ln.box[0]) < 0.6 * width]
    if len(narrow) < 6:
        return []
    bins = 200
    counts = np.zeros(bins, dtype=int)
    for line in narrow:
        a = int(max(0.0, line.box[0]) / width * bins)
        b = int(min(width, line.box[2]) / width * bins)
        counts[a:b + 1] += 1
    covered = counts > max(1, len(narrow) // 20)
    gutters: list[float] = []
    lo, hi = int(0.15 * bins), int(0.85 * bins)
    i = lo
    while i < hi:
        if covered[i]:
            i += 1
            continue
        j = i
        while j < hi and not covered[j]:
            j += 1
        x = (i + j) / 2 / bins * width
        left = [ln for ln in narrow if ln.box[2] <= x]
        right = [ln for ln in narrow if ln.box[0] >= x]
        if len(left) >= 3 and len(right) >= 3 and _side_by_side(left, right):
            gutters.append(x)
        i = j
    return gutters


def _side_by_side(left: Sequence[OcrLine], right: Sequence[OcrLine]) -> bool:
    """Whether the two groups share a vertical stretch (columns), not one above the other."""
    top = max(min(ln.box[1] for ln in left), min(ln.box[1] for ln in right))
    bottom = min(max(ln.box[3] for ln in left), max(ln.box[3] for ln in right))
    return bottom > top


def _rows(lines: Sequence[OcrLine]) -> list[list[OcrLine]]:
    """Lines grouped into rows (centres within half a line height), top to bottom, each left to
    right."""
    if not lines:
        return []
    height = median(ln.box[3] - ln.box[1] for ln in lines) or 1.0
    rows: list[list[OcrLine]] = []
    centre: float | None = None
    for line in sorted(lines, key=lambda ln: (ln.box[1] + ln.box[3]) / 2):
        middle = (line.box[1] + line.box[3]) / 2
        if rows and centre is not None and abs(middle - centre) < height / 2:
            rows[-1].append(line)
        else:
            rows.append([line])
            centre = middle
    return [sorted(row, key=lambda ln: ln.box[0]) for row in rows]


PageProgress = Callable[[int, int], None]
"""Told (pages read by OCR so far, pages in the file) after each page OCR reads."""
