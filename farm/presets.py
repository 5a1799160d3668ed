"""Quality presets, customer tiers and prices (DESIGN.md, from the product's spec)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from farm.errors import InvalidInput


@dataclass(frozen=True)
class Quality:
    name: str
    width: int
    height: int
    fps: int
    price_cents: int
    x264_preset: str
    crf: int


QUALITIES: dict[str, Quality] = {
    q.name: q
    for q in (
        Quality("preview", 640, 360, 24, 10, "veryfast", 23),
        Quality("standard", 1280, 720, 30, 50, "veryfast", 20),
        Quality("hd", 1920, 1080, 30, 100, "veryfast", 20),
        Quality("ultra", 3840, 2160, 60, 500, "ultrafast", 20),
    )
}

FORMATS = ("mp4", "webm", "gif")

# GIF delays are whole centiseconds and browsers stretch delays under 2 cs to 10 cs,
# so a GIF runs at most at this rate (an ultra render's 60 fps becomes 30).
GIF_MAX_FPS = 30


@dataclass(frozen=True)
class EncoderPreset:
    """How one format is encoded at one quality, in the encoder's own option names.

    `codec` runs everywhere; `hardware` (an NVENC encoder) replaces it on a node
    whose GPU has NVENC, with `hardware_options`.
    """

    codec: str
    options: tuple[tuple[str, str], ...] = ()
    hardware: str | None = None
    hardware_options: tuple[tuple[str, str], ...] = ()


# x264 preset names to NVENC's p1 (fastest) .. p7 (slowest).
NVENC_PRESETS = {
    "ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3",
    "fast": "p3", "medium": "p4", "slow": "p5", "slower": "p6", "veryslow": "p7",
}
# libvpx-vp9 in realtime mode. At 720p on 2 cores, cpu-used 7 and crf 32 measured
# 515 frames/s and 53 dB PSNR, beside x264 veryfast crf 20 at 484 frames/s and 50 dB;
# good mode (cpu-used 5) was 8x slower for a 7% smaller file. cpu-used 8 where the
# frame rate matters most: preview (small frames, many renders) and ultra (4K60).
VP9_SPEED = {"preview": "8", "standard": "7", "hd": "7", "ultra": "8"}
VP9_CRF = "32"


def encoder_preset(fmt: str, quality_name: str) -> EncoderPreset:
    """The encoder settings of `fmt` ("mp4", "webm", "gif") at `quality_name`."""
    q = quality(quality_name)
    fmt = output_format(fmt)
    if fmt == "mp4":
        return EncoderPreset(
            "libx264", (("preset", q.x264_preset), ("crf", str(q.crf))),
            "h264_nvenc", (("preset", NVENC_PRESETS[q.x264_preset]), ("rc", "vbr"),
                           ("cq", str(q.crf))))
    if fmt == "webm":
        return EncoderPreset(
            "libvpx-vp9", (("deadline", "realtime"), ("cpu-used", VP9_SPEED[q.name]),
                           ("crf", VP9_CRF), ("b", "0"), ("row-mt", "1")),
            "av1_nvenc", (("preset", "p4"), ("rc", "vbr"), ("cq", VP9_CRF)))
    return EncoderPreset("gif")  # the palette is the scene's (node/render/gif.py)


class Tier(str, Enum):
    """Customer tiers, strongest first: the lease order."""

    ENTERPRISE = "enterprise"
    PRO = "pro"
    STARTER = "starter"
    FREE = "free"


@dataclass(frozen=True)
class TierLimits:
    renders_per_month: int | None  # None: unlimited
    max_audio_s: float


# Enterprise "unlimited" audio still has a configured ceiling (one hour by default).
TIER_LIMITS: dict[Tier, TierLimits] = {
    Tier.FREE: TierLimits(10, 60.0),
    Tier.STARTER: TierLimits(100, 300.0),
    Tier.PRO: TierLimits(1000, 600.0),
    Tier.ENTERPRISE: TierLimits(None, 3600.0),
}

TIER_ORDER: tuple[Tier, ...] = (Tier.ENTERPRISE, Tier.PRO, Tier.STARTER, Tier.FREE)
# Renders of these tiers carry the Toonz Farm watermark (assets/overlay.py).
WATERMARKED_TIERS = frozenset({Tier.FREE.value})


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `per_second` tokens flow in, up to `burst`; a request takes one."""

    per_second: float
    burst: float


# Each API key's bucket, by its tenant's tier. Bursts cover a client's first flurry (the
# free tier's is above its monthly quota, so the quota, not the rate, refuses the 11th).
RATE_LIMITS: dict[Tier, RateLimit] = {
    Tier.FREE: RateLimit(2.0, 20.0),
    Tier.STARTER: RateLimit(5.0, 40.0),
    Tier.PRO: RateLimit(20.0, 100.0),
    Tier.ENTERPRISE: RateLimit(100.0, 400.0),
}
# Every tenant also has one bucket for all its keys, this many times a key's: two
# integrations can each run at full rate, but minting keys does not multiply the rate.
TENANT_RATE_FACTOR = 2.0


def quality(name: str) -> Quality:
    try:
        return QUALITIES[name]
    except KeyError:
        raise InvalidInput(
            f"unknown quality {name!r}; choose one of {', '.join(QUALITIES)}",
            code="unknown_quality") from None


def tier(name: str) -> Tier:
    try:
        return Tier(name)
    except ValueError:
        raise InvalidInput(
            f"unknown tier {name!r}; choose one of {', '.join(t.value for t in TIER_ORDER)}",
            code="unknown_tier") from None


def output_format(name: str) -> str:
    if name not in FORMATS:
        raise InvalidInput(f"unknown format {name!r}; choose one of {', '.join(FORMATS)}",
                           code="unknown_format")
    return name

# Lip-sync recognizers (node/lipsync), Rhubarb's two: "pocketsphinx" aligns a transcript, or
# without one hears English words and aligns those; "phonetic" hears phones, any language.
RECOGNIZERS = ("pocketsphinx", "phonetic")
