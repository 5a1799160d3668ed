"""farm.audio: decoding any format to 16 kHz mono float32, and its errors."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from farm.audio import decode_audio, probe_duration, resample
from farm.errors import InvalidInput

SAMPLE = Path(__file__).resolve().parents[1] / "assets" / "samples" / "goforward.wav"


def write_audio(path: Path, seconds: float, rate: int, channels: int, codec: str = "pcm_s16le",
                freq: float = 440.0) -> Path:
    """Encode a sine (left) and its octave (right) with PyAV."""
    layout = {1: "mono", 2: "stereo"}[channels]
    t = np.arange(int(seconds * rate)) / rate
    waves = np.stack([0.5 * np.sin(2 * np.pi * freq * t), 0.5 * np.sin(2 * np.pi * 2 * freq * t)])[:channels]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        fmt = stream.codec_context.format.name
        planar = stream.codec_context.format.is_planar
        kind = {"s16": np.int16, "s16p": np.int16, "flt": np.float32, "fltp": np.float32}[fmt]
        scale = 32767 if kind is np.int16 else 1.0
        step = stream.codec_context.frame_size or 1024
        for i in range(0, t.size, step):
            block = (waves[:, i:i + step] * scale).astype(kind)
            data = block if planar else block.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)
            frame.sample_rate = rate
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def peak_hz(samples: np.ndarray, rate: int, n: int = 1) -> float | list[float]:
    """The strongest frequency (or the n strongest, ascending)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    top = sorted(float(i * rate / samples.size) for i in np.argsort(spectrum)[-n:])
    return top[0] if n == 1 else top


def test_stereo_44k_wav_decodes_to_16k_mono(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "stereo.wav", 1.5, 44100, 2)
    samples = decode_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(samples.size - 24000) <= 16  # 1.5 s at 16 kHz
    assert np.abs(samples).max() <= 1.0
    # Both channels are mixed in: the spectrum keeps 440 Hz and 880 Hz.
    assert peak_hz(samples[2000:18000], 16000, n=2) == pytest.approx([440, 880], abs=2)
    assert probe_duration(path) == pytest.approx(1.5, abs=1e-3)


def test_sox_made_stereo_speech_matches_the_mono_original(tmp_path: Path) -> None:
    if shutil.which("sox") is None:
        pytest.skip("sox is not installed")
    path = tmp_path / "gf44.wav"
    subprocess.run(["sox", str(SAMPLE), "-r", "44100", "-c", "2", str(path)], check=True)
    mono = decode_audio(SAMPLE)
    stereo = decode_audio(path)
    assert stereo.size == pytest.approx(mono.size, abs=16)
    n = min(mono.size, stereo.size)
    assert np.corrcoef(mono[:n], stereo[:n])[0, 1] > 0.99


def test_other_rates_and_file_objects(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "mono8k.wav", 2.0, 8000, 1, freq=300.0)
    samples = decode_audio(io.BytesIO(path.read_bytes()), rate=22050)
    assert abs(samples.size - 44100) <= 16
    assert peak_hz(samples, 22050) == pytest.approx(300, abs=2)
    with path.open("rb") as f:
        assert decode_audio(f).size == pytest.approx(32000, abs=16)


def test_compressed_audio(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "speech.m4a", 3.0, 48000, 2, codec="aac")
    samples = decode_audio(path)
    assert samples.size / 16000 == pytest.approx(3.0, abs=0.05)  # AAC pads the last frame
    assert peak_hz(samples[4000:36000], 16000, n=2) == pytest.approx([440, 880], abs=2)
    assert probe_duration(path) == pytest.approx(3.0, abs=0.05)


def test_real_sample() -> None:
    samples = decode_audio(SAMPLE)
    assert samples.size == 44580  # 2.786 s at 16 kHz
    assert 0.1 < np.abs(samples).max() <= 1.0
    assert probe_duration(SAMPLE) == pytest.approx(2.786, abs=1e-3)


@pytest.mark.parametrize("content", [
    b"",
    b"RIFF\x24\x00\x00\x00WAVEfmt ",  # a WAV header cut short
    bytes(np.random.default_rng(7).integers(0, 256, 5000, dtype=np.uint8)),
    b"this is a transcript, not audio\n" * 20,
])
def test_corrupt_files_raise_unreadable(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "upload.wav"
    path.write_bytes(content)
    with pytest.raises(InvalidInput) as info:
        decode_audio(path)
    assert info.value.code == "unreadable_audio"
    assert info.value.status == 400
    assert "\n" not in info.value.message
    with pytest.raises(InvalidInput) as info:
        probe_duration(path)
    assert info.value.code == "unreadable_audio"


def test_video_without_audio_raises_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(InvalidInput, match="no audio stream") as info:
        decode_audio(path)
    assert info.value.code == "unreadable_audio"


def test_too_long(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "long.wav", 4.0, 16000, 1)
    assert decode_audio(path, max_duration_s=4.0).size == 64000
    with pytest.raises(InvalidInput) as info:
        decode_audio(path, max_duration_s=3.0)
    assert info.value.code == "audio_too_long"
    assert "3 s" in info.value.message


def test_too_long_without_a_declared_duration(tmp_path: Path) -> None:
    # Raw ADTS AAC carries no duration: the limit is enforced while decoding.
    path = write_audio(tmp_path / "long.aac", 4.0, 16000, 1, codec="aac")
    with pytest.raises(InvalidInput) as info:
        decode_audio(path, max_duration_s=2.0)
    assert info.value.code == "audio_too_long"


def test_resample_keeps_pitch_and_length() -> None:
    t = np.arange(22050) / 22050
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    out = resample(tone, 22050, 16000)
    assert out.dtype == np.float32
    assert abs(out.size - 16000) <= 16
    assert peak_hz(out, 16000) == pytest.approx(1000, abs=2)
    assert resample(tone, 22050, 22050).size == tone.size


def test_long_audio_without_a_declared_duration_decodes_whole(tmp_path: Path) -> None:
    # More than the 60 s the output buffer starts with when the container gives no length.
    path = write_audio(tmp_path / "long.aac", 75.0, 8000, 1, codec="aac")
    samples = decode_audio(path)
    assert abs(samples.size - 75 * 16000) < 16000 * 0.2  # AAC priming and padding
    assert peak_hz(samples[16000:32000], 16000) == pytest.approx(440, abs=2)


def test_sample_buffer_grows_and_gives_back_what_it_over_reserved() -> None:
    from farm.audio import _Samples

    parts = [np.arange(i, i + 8, dtype=np.float32) for i in range(0, 24, 8)]
    small = _Samples(10)
    for part in parts:
        small.append(part)
    assert np.array_equal(small.result(), np.concatenate(parts))
    big = _Samples(10**6)  # a header that claimed far more than the file holds
    big.append(parts[0])
    out = big.result()
    assert out.size == 8 and out.base is None  # a copy: the big buffer can go


def test_declared_duration_reads_only_the_header(tmp_path: Path) -> None:
    from farm.audio import declared_duration

    assert declared_duration(write_audio(tmp_path / "a.wav", 2.5, 22050, 2)) == pytest.approx(2.5, abs=0.01)
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    with pytest.raises(InvalidInput) as info:
        declared_duration(tmp_path / "bad.wav")
    assert info.value.code == "unreadable_audio"
