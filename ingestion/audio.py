"""Audio and video to timed text: in-process decoding (PyAV) and Whisper transcription.

Why in-process: `whisper.load_audio` shells out to an `ffmpeg` binary that a fresh machine lacks,
while PyAV's wheels bundle FFmpeg's libraries. Any container FFmpeg reads (wav, flac, mp3, m4a/aac,
ogg/opus, webm, mp4, aiff, ...) becomes 16 kHz mono float32, the array Whisper takes directly.

Bad input never crashes a batch: every decoding failure is an `AudioDecodeError` (a ValueError)
whose one-line message names the file and the cause. Long recordings are streamed: decoded in
30 s blocks and transcribed in windows (10 minutes by default), so memory holds about one window
(~40 MB) whatever the length, and progress is reported between windows.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import whisper

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
# Peak amplitude below which a window is treated as silence and not sent to Whisper
# (about -60 dBFS); Whisper tends to invent "Thank you." on digital silence.
SILENCE_PEAK = 1e-3


class AudioDecodeError(ValueError):
    """The file holds no decodable audio; the message names the file and why."""


@dataclass(frozen=True)
class Segment:
    """A stretch of speech, in seconds from the start of the recording."""

    start: float
    end: float
    text: str


@dataclass
class Transcript:
    """What Whisper heard: the (detected or given) language and timed segments.

    `language` is "" when the audio held nothing to detect a language from (silence).
    """

    language: str
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments)


def decode_audio(path: Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode the first audio stream of any FFmpeg-readable file to mono float32 at `sample_rate`.

    The whole recording in memory; long recordings are better streamed with `iter_audio`.
    """
    blocks = iter_audio(path, sample_rate)
    first = next(blocks)
    buffer = _Buffer(len(first))
    buffer.extend([first])
    for block in blocks:
        buffer.extend([block])
    return buffer.array()


def audio_duration(path: Path) -> float | None:
    """The container's stated duration in seconds (None when it does not say)."""
    import av

    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            return container.duration / 1_000_000 if container.duration else None
    except (av.error.FFmpegError, OSError, ValueError):
        return None


def iter_audio(
    path: Path, sample_rate: int = SAMPLE_RATE, block_seconds: float = 30.0
) -> Iterator[np.ndarray]:
    """Stream the first audio stream as mono float32 blocks of about `block_seconds` each.

    Packets are decoded and resampled one by one. A packet the codec rejects (e.g. a truncated
    last FLAC frame) is skipped, as the ffmpeg tool does; a demuxer failure part-way keeps what
    decoded; a file that yields no samples at all raises `AudioDecodeError` (on the first `next`).
    """
    import av

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioDecodeError(f"cannot decode audio {path}: {exc.strerror or exc}") from exc
    if path.is_dir():
        raise AudioDecodeError(f"cannot decode audio {path}: it is a directory")
    if size == 0:
        raise AudioDecodeError(f"cannot decode audio {path}: file is empty")

    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise AudioDecodeError(f"cannot decode audio {path}: {_reason(exc)}") from exc

    block = max(1, int(block_seconds * sample_rate))
    pending: list[np.ndarray] = []
    pending_n = 0
    emitted = 0
    bad_packets = 0
    good_packets = 0
    try:
        with container:
            if not container.streams.audio:
                kinds = sorted({s.type for s in container.streams}) or ["none"]
                raise AudioDecodeError(
                    f"cannot decode audio {path}: no audio stream (streams: {', '.join(kinds)})"
                )
            stream = container.streams.audio[0]
            resampler = _Resampler(sample_rate)
            try:
                for packet in container.demux(stream):
                    try:
                        frames = packet.decode()
                    except (av.error.InvalidDataError, av.error.UndefinedError) as exc:
                        bad_packets += 1
                        log.debug("%s: skipped undecodable packet: %s", path, _reason(exc))
                        continue
                    if packet.size:
                        good_packets += 1
                    for frame in frames:
                        for piece in resampler.resample(frame):
                            pending.append(piece)
                            pending_n += len(piece)
                    if pending_n >= block:
                        out = np.concatenate(pending)
                        pending, pending_n = [], 0
                        emitted += len(out)
                        yield out
            except av.error.FFmpegError as exc:
                # Demuxing failed part-way (truncated/corrupt container): keep what decoded.
                if not (emitted or pending_n):
                    raise
                log.warning("%s: audio truncated after %.1f s: %s", path,
                            (emitted + pending_n) / sample_rate, _reason(exc))
            for piece in resampler.flush():
                pending.append(piece)
                pending_n += len(piece)
    except AudioDecodeError:
        raise
    except (av.error.FFmpegError, ValueError, OSError, RuntimeError, MemoryError) as exc:
        raise AudioDecodeError(f"cannot decode audio {path}: {_reason(exc)}") from exc

    if bad_packets:
        log.warning("%s: skipped %d undecodable audio packet(s)", path, bad_packets)
    if pending_n:
        emitted += pending_n
        yield np.concatenate(pending)
    if not emitted:
        cause = "every audio packet was corrupt" if bad_packets and not good_packets else "no audio samples"
        raise AudioDecodeError(f"cannot decode audio {path}: {cause}")


class _Resampler:
    """`av.AudioResampler` to mono float32, rebuilt if the input format changes mid-stream."""

    def __init__(self, rate: int):
        self._rate = rate
        self._resampler: Any = None
        self._input: tuple | None = None

    def resample(self, frame: Any) -> list[np.ndarray]:
        import av

        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        out: list[np.ndarray] = []
        if self._resampler is None or key != self._input:
            out.extend(self.flush())
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self._rate)
            self._input = key
        frame.pts = None  # timestamps are irrelevant here; gaps would only confuse the filter graph
        out.extend(f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame))
        return out

    def flush(self) -> list[np.ndarray]:
        if self._resampler is None:
            return []
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(None)]
        self._resampler = None
        return out


class _Buffer:
    """Append-only float32 buffer that grows by half its size, so it rarely copies."""

    def __init__(self, capacity: int):
        self._data = np.empty(max(capacity, SAMPLE_RATE), dtype=np.float32)
        self.size = 0

    def extend(self, chunks: list[np.ndarray]) -> None:
        for chunk in chunks:
            end = self.size + len(chunk)
            if end > len(self._data):
                grown = np.empty(max(end, int(len(self._data) * 1.5)), dtype=np.float32)
                grown[: self.size] = self._data[: self.size]
                self._data = grown
            self._data[self.size : end] = chunk
            self.size = end

    def array(self) -> np.ndarray:
        # A view avoids copying hours of audio; copy only when most of the buffer would be wasted
        # (a header that overstated the duration).
        if self.size >= len(self._data) // 2:
            return self._data[: self.size]
        return self._data[: self.size].copy()


def _reason(exc: BaseException) -> str:
    """FFmpeg's own words without the errno and the repeated file name, on one line."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


class WhisperTranscriber:
    """Whisper speech-to-text with lazy loading, greedy decoding and windowed long-audio handling.

    `checkpoint` is a checkpoint file (e.g. from `rag.models.whisper_ct2.packaged_whisper_checkpoint()`)
    or a whisper model name such as "base" (downloads, so needs network).
    """

    def __init__(
        self,
        checkpoint: str | Path,
        device: str = "cpu",
        language: str | None = None,
        window_seconds: float = 600.0,
        decode_options: dict | None = None,
    ):
        """`decode_options` override the greedy decoding given to `whisper.transcribe`
        (e.g. `{"beam_size": 5}`; benchmarks/whisper_long.py compares them)."""
        self.checkpoint = checkpoint
        self.decode_options = dict(decode_options or {})
        self.device = device
        self.language = language
        self.window_seconds = float(window_seconds)
        self._model: whisper.Whisper | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> "whisper.Whisper":
        """The loaded model (loaded on first use, once, even with several threads)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    import whisper

                    self._model = whisper.load_model(str(self.checkpoint), device=self.device)
        return self._model

    def transcribe_file(
        self, path: Path, progress: Callable[[float, float], None] | None = None
    ) -> Transcript:
        """Stream-decode then transcribe a file, holding at most about one window of audio.

        `AudioDecodeError` for files with no usable audio."""
        total = audio_duration(path) or 0.0
        return self.transcribe_blocks(iter_audio(path), total, progress)

    def transcribe(
        self, audio: np.ndarray, progress: Callable[[float, float], None] | None = None
    ) -> Transcript:
        """Transcribe 16 kHz mono float32 audio; `progress(done_s, total_s)` is called after each window."""
        audio = np.ascontiguousarray(np.asarray(audio, dtype=np.float32).reshape(-1))
        return self.transcribe_blocks([audio], len(audio) / SAMPLE_RATE, progress)

    def transcribe_blocks(
        self, blocks: Iterable[np.ndarray], total: float = 0.0,
        progress: Callable[[float, float], None] | None = None,
    ) -> Transcript:
        """Transcribe audio arriving in blocks (16 kHz mono float32), one window at a time.

        Windows end at the quietest moment near the window length, so words are rarely cut; each
        window is prompted with the end of the previous one's text, and the language detected in the
        first window with sound is kept for the rest. Only the current window and the block being
        read are held in memory. `total` (seconds) is only for progress reports.
        """
        window = int(self.window_seconds * SAMPLE_RATE)
        state = _WindowState(language=self.language)
        pending = np.zeros(0, dtype=np.float32)
        offset = 0
        for block in blocks:
            block = np.asarray(block, dtype=np.float32).reshape(-1)
            pending = np.concatenate([pending, block]) if len(pending) else block
            while window > 0 and len(pending) > window:
                cut = _quiet_cut(pending, window)
                self._transcribe_window(pending[:cut], offset, state)
                offset += cut
                pending = pending[cut:].copy()
                if progress is not None:
                    progress(offset / SAMPLE_RATE, max(total, offset / SAMPLE_RATE))
        self._transcribe_window(pending, offset, state)
        end = (offset + len(pending)) / SAMPLE_RATE
        if progress is not None:
            progress(end, end)
        return Transcript(language=state.language or "", segments=state.segments)

    def _transcribe_window(self, piece: np.ndarray, offset_samples: int, state: "_WindowState") -> None:
        import whisper

        offset = offset_samples / SAMPLE_RATE
        if not len(piece) or float(np.max(np.abs(piece))) < SILENCE_PEAK:
            return
        options = {"temperature": 0.0, "beam_size": None, "best_of": None,
                   "fp16": self.device != "cpu", **self.decode_options}
        result = whisper.transcribe(
            self.model,
            np.ascontiguousarray(piece),
            verbose=None,
            language=state.language,
            initial_prompt=state.prompt,
            **options,
        )
        state.language = state.language or result.get("language") or None
        window_end = offset + len(piece) / SAMPLE_RATE
        segments = state.segments
        for seg in result["segments"]:
            text = seg["text"].strip()
            if not text:
                continue
            seg_start = min(offset + float(seg["start"]), window_end)
            seg_end = min(max(offset + float(seg["end"]), seg_start), window_end)
            if segments and seg_start < segments[-1].end:
                seg_start = min(segments[-1].end, seg_end)
            segments.append(Segment(round(seg_start, 3), round(seg_end, 3), text))
        tail = " ".join(s.text for s in segments[-8:])
        state.prompt = tail[-400:] or None


@dataclass
class _WindowState:
    language: str | None = None
    prompt: str | None = None
    segments: list[Segment] = field(default_factory=list)


def _quiet_cut(audio: np.ndarray, window: int) -> int:
    """Where to end a window of about `window` samples: the quietest 100 ms in its last 20 s."""
    hop = SAMPLE_RATE // 10
    search = min(20 * SAMPLE_RATE, window // 2)
    lo, hi = window - search, window
    frames = audio[lo:hi][: (hi - lo) // hop * hop].reshape(-1, hop)
    quietest = int(np.argmin(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))))
    return lo + quietest * hop + hop // 2
