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

FORMATS = ("mp4",)


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
