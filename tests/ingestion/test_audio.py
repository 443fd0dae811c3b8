"""Audio decoding (PyAV) and Whisper transcription with the packaged whisper-base, on real speech."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from eval.wer import word_errors
from ingestion.audio import SAMPLE_RATE, AudioDecodeError, Segment, Transcript, WhisperTranscriber, decode_audio

DATA = Path(__file__).resolve().parents[1] / "data"
JFK = DATA / "jfk.flac"
LIBRISPEECH = DATA / "librispeech-1089-134691-0001.flac"
SHARED_AUDIO = Path(__file__).resolve().parents[3] / "shared" / "data" / "audio"
JFK_LINE = "ask not what your country can do for you"


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())




def shared(*parts: str) -> Path:
    path = SHARED_AUDIO.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not present: {path}")
    return path


@pytest.fixture(scope="session")
def transcriber(tmp_path_factory: pytest.TempPathFactory) -> WhisperTranscriber:
    from rag.models.whisper_ct2 import packaged_whisper_checkpoint

    checkpoint = packaged_whisper_checkpoint(cache_dir=tmp_path_factory.mktemp("whisper-audio-cache"))
    return WhisperTranscriber(checkpoint)


@pytest.fixture(scope="module")
def jfk_audio() -> np.ndarray:
    return decode_audio(JFK)


def encode(
    src: np.ndarray, path: Path, codec: str, rate: int = 44_100, layout: str = "stereo", video: bool = False
) -> Path:
    """Write `src` (16 kHz mono) into another container/codec with PyAV, as a user's file would be."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        if video:
            vstream = out.add_stream("mpeg4", rate=5)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
            for i in range(int(len(src) / SAMPLE_RATE * 5)):
                frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 5 % 255, np.uint8), format="rgb24")
                for packet in vstream.encode(frame):
                    out.mux(packet)
            for packet in vstream.encode(None):
                out.mux(packet)
        pcm = (np.clip(src, -1, 1) * 32767).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts, frame.time_base = 0, Fraction(1, SAMPLE_RATE)
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=rate)
        frame_size = stream.codec_context.frame_size or 1024
        fifo = av.AudioFifo()
        for resampled in resampler.resample(frame) + resampler.resample(None):
            fifo.write(resampled)
        while chunk := fifo.read(frame_size, partial=True):
            for packet in stream.encode(chunk):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


# --- decoding -------------------------------------------------------------------------------------


def test_decode_jfk_is_16k_mono_float32(jfk_audio: np.ndarray) -> None:
    assert jfk_audio.dtype == np.float32 and jfk_audio.ndim == 1
    assert len(jfk_audio) / SAMPLE_RATE == pytest.approx(11.0, abs=0.05)
    assert 0.05 < float(np.sqrt(np.mean(jfk_audio**2))) < 0.5


@pytest.mark.parametrize(
    "name,codec,kwargs",
    [
        ("clip.wav", "pcm_s16le", {}),
        ("clip.aiff", "pcm_s16be", {}),
        ("clip.flac", "flac", {}),
        ("clip.mp3", "libmp3lame", {}),
        ("clip.m4a", "aac", {}),
        ("clip.ogg", "libopus", {"rate": 48_000}),
        ("clip.webm", "libopus", {"rate": 48_000, "layout": "mono"}),
        ("clip.mp4", "aac", {"video": True}),
    ],
)
def test_decode_containers_give_the_same_signal(
    tmp_path: Path, jfk_audio: np.ndarray, name: str, codec: str, kwargs: dict
) -> None:
    clip = jfk_audio[: 3 * SAMPLE_RATE]
    decoded = decode_audio(encode(clip, tmp_path / name, codec, **kwargs))
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert len(decoded) == pytest.approx(len(clip), abs=0.1 * SAMPLE_RATE)  # codec padding only
    # Same loudness envelope (lossy codecs shift a few ms, so compare 100 ms energies).
    n = min(len(decoded), len(clip)) // 1600 * 1600
    env_a = np.sqrt(np.mean(clip[:n].reshape(-1, 1600) ** 2, axis=1))
    env_b = np.sqrt(np.mean(decoded[:n].reshape(-1, 1600) ** 2, axis=1))
    assert np.corrcoef(env_a, env_b)[0, 1] > 0.95


@pytest.mark.parametrize(
    "content,cause",
    [
        (b"", "empty"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "Invalid data"),
        (bytes(range(256)) * 40, "Invalid data"),
    ],
    ids=["empty", "truncated-header", "random-bytes"],
)
def test_bad_files_raise_one_clear_error(tmp_path: Path, content: bytes, cause: str) -> None:
    bad = tmp_path / "broken recording.wav"
    bad.write_bytes(content)
    with pytest.raises(AudioDecodeError) as info:
        decode_audio(bad)
    message = str(info.value)
    assert str(bad) in message and cause in message and "\n" not in message
    assert isinstance(info.value, ValueError)


def test_missing_file_and_directory_raise(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match="nope.mp3"):
        decode_audio(tmp_path / "nope.mp3")
    with pytest.raises(AudioDecodeError, match="directory"):
        decode_audio(tmp_path)


def test_video_without_audio_says_so(tmp_path: Path) -> None:
    import av

    path = tmp_path / "silent-film.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(AudioDecodeError, match=r"silent-film.mp4: no audio stream \(streams: video\)"):
        decode_audio(path)


def test_truncated_flac_keeps_what_decodes(tmp_path: Path) -> None:
    cut = tmp_path / "cut.flac"
    cut.write_bytes(JFK.read_bytes()[: len(JFK.read_bytes()) // 2])
    audio = decode_audio(cut)
    assert 3.0 < len(audio) / SAMPLE_RATE < 8.0


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "name",
    [
        "aeneas_mono.empty.wav",
        "aeneas_mono.invalid.wav",
        "aeneas_mono.zero.wav",
        "aeneas_p001.empty",
        "pocketsphinx_awful.wav",
        "pocketsphinx_bad.wav",
        "pocketsphinx_evil.wav",
        "pocketsphinx_null.wav",
    ],
)
def test_shared_malformed_files_decode_or_raise_clearly(name: str) -> None:
    path = shared("malformed", name)
    try:
        audio = decode_audio(path)
    except AudioDecodeError as exc:
        assert name in str(exc) and "\n" not in str(exc)
    else:
        assert audio.dtype == np.float32 and audio.ndim == 1


@pytest.mark.parametrize("ext", ["aac", "aiff", "flac", "mp3", "mp4", "ogg", "wav", "webm"])
def test_shared_containers_decode(ext: str) -> None:
    audio = decode_audio(shared("aeneas_p001_formats", f"p001.{ext}"))
    assert len(audio) / SAMPLE_RATE == pytest.approx(9.0, abs=0.05)


# --- transcription ----------------------------------------------------------------------------------


def test_model_loads_lazily(tmp_path: Path) -> None:
    transcriber = WhisperTranscriber(tmp_path / "not-there.pt")
    assert transcriber._model is None  # constructing never touches the file


def test_jfk_transcript(transcriber: WhisperTranscriber, jfk_audio: np.ndarray) -> None:
    calls: list[tuple[float, float]] = []
    transcript = transcriber.transcribe(jfk_audio, progress=lambda done, total: calls.append((done, total)))
    assert isinstance(transcript, Transcript)
    assert transcript.language == "en"
    assert JFK_LINE in normalise(transcript.text)
    assert "ask what you can do for your country" in normalise(transcript.text)
    duration = len(jfk_audio) / SAMPLE_RATE
    assert transcript.segments and all(isinstance(s, Segment) for s in transcript.segments)
    previous_end = 0.0
    for segment in transcript.segments:
        assert previous_end <= segment.start < segment.end <= duration + 1e-6
        previous_end = segment.end
    assert calls == [(duration, duration)]


def test_librispeech_clip_word_error_rate(transcriber: WhisperTranscriber) -> None:
    reference = (DATA / "librispeech-1089-134691-0001.txt").read_text()
    transcript = transcriber.transcribe(decode_audio(LIBRISPEECH))
    errors, words = word_errors(reference, transcript.text)
    assert errors / words <= 0.1


def test_long_audio_is_transcribed_in_windows(jfk_audio: np.ndarray, transcriber: WhisperTranscriber) -> None:
    windowed = WhisperTranscriber(transcriber.checkpoint, window_seconds=15)
    windowed._model = transcriber.model  # same weights, no second load
    pause = np.zeros(3 * SAMPLE_RATE, dtype=np.float32)
    audio = np.concatenate([jfk_audio, pause, jfk_audio])  # 25 s: the cut must land in the pause
    calls: list[tuple[float, float]] = []
    transcript = windowed.transcribe(audio, progress=lambda done, total: calls.append((done, total)))
    total = len(audio) / SAMPLE_RATE
    assert len(calls) == 2 and 11.0 <= calls[0][0] <= 14.0 and calls[1] == (total, total)
    assert normalise(transcript.text).count(JFK_LINE) == 2
    second = [s for s in transcript.segments if s.start >= 11.0]
    assert second and JFK_LINE in normalise(" ".join(s.text for s in second))
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts) and transcript.segments[-1].end <= total + 1e-6


@pytest.mark.parametrize("seconds", [0.0, 5.0])
def test_silence_gives_no_segments(transcriber: WhisperTranscriber, seconds: float) -> None:
    transcript = transcriber.transcribe(np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32))
    assert transcript.segments == [] and transcript.text == ""


def test_transcribe_file_decodes_a_lossy_container(
    tmp_path: Path, transcriber: WhisperTranscriber, jfk_audio: np.ndarray
) -> None:
    m4a = encode(jfk_audio, tmp_path / "jfk.m4a", "aac")
    transcript = transcriber.transcribe_file(m4a)
    assert JFK_LINE in normalise(transcript.text)


@pytest.mark.slow
@pytest.mark.parametrize("ext", ["aac", "aiff", "flac", "mp3", "mp4", "ogg", "wav", "webm"])
def test_shared_containers_transcribe_the_same_opening(transcriber: WhisperTranscriber, ext: str) -> None:
    transcript = transcriber.transcribe(decode_audio(shared("aeneas_p001_formats", f"p001.{ext}")))
    assert normalise(transcript.text).startswith("1 from fairest creatures we desire")


@pytest.mark.slow
def test_shared_speech_word_error_rate(transcriber: WhisperTranscriber) -> None:
    cases = []
    for trans in sorted(shared("librispeech_speech2text").glob("*.trans.txt")):
        for line in trans.read_text().splitlines():
            utt, text = line.split(" ", 1)
            cases.append((trans.parent / f"{utt}.flac", text))
    for wav in sorted(shared("librivox_pocketsphinx").glob("*.wav")):
        cases.append((wav, wav.with_suffix(".txt").read_text()))
    assert len(cases) == 9
    errors = words = 0
    for path, reference in cases:
        hypothesis = transcriber.transcribe(decode_audio(path)).text
        e, n = word_errors(reference, hypothesis)
        errors += e
        words += n
    assert errors / words <= 0.08  # measured 0.039 (5 errors in 129 words)


def test_iter_audio_streams_blocks_that_add_up_to_the_whole() -> None:
    from ingestion.audio import iter_audio

    blocks = list(iter_audio(JFK, block_seconds=2.0))
    assert len(blocks) >= 5
    assert all(len(b) <= 2.5 * SAMPLE_RATE for b in blocks)
    assert np.array_equal(np.concatenate(blocks), decode_audio(JFK))


def test_transcribe_file_streams_long_audio_window_by_window(
    tmp_path: Path, jfk_audio: np.ndarray, transcriber: WhisperTranscriber
) -> None:
    windowed = WhisperTranscriber(transcriber.checkpoint, window_seconds=15)
    windowed._model = transcriber.model
    pause = np.zeros(3 * SAMPLE_RATE, dtype=np.float32)
    long_file = encode(np.concatenate([jfk_audio, pause, jfk_audio]), tmp_path / "twice.flac", "flac",
                       rate=SAMPLE_RATE, layout="mono")
    calls: list[tuple[float, float]] = []
    transcript = windowed.transcribe_file(long_file, progress=lambda d, t: calls.append((d, t)))
    assert normalise(transcript.text).count(JFK_LINE) == 2
    assert len(calls) == 2 and 11.0 <= calls[0][0] <= 14.0 and calls[1][0] == pytest.approx(25.0, abs=0.1)
