"""Tune the phone-to-shape timing rules (node/lipsync/shapes.py ShapeRules) on labelled clips.

    .venv/bin/python bench/tune_shapes.py [--top 10]

Clips are synthesized with espeak-ng (bench/lipsync.py's Espeak: it reports which
phoneme sounds when), in two sets spoken by the same five voices: a tuning set of
sentence pairs the quality bench never uses, and a held-out set. Each clip is decoded
once, with and without its transcript; every rule set in the grid then turns the
same phones into cues, scored by bench/lipsync.py's 10 ms frame measure. The
objective is the mean of the strict and the 42 ms-tolerant scores over both modes,
so anticipation (shapes ahead of their sound, which animators want and the strict
score penalises) must pay for itself in the tolerant one. Prints the best rule sets
on the tuning clips, then the chosen one beside the current defaults on the held-out
clips, and writes JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from lipsync import SENTENCES, VOICES, Espeak, score  # noqa: E402  (bench/lipsync.py)

GRID = {
    "lead_frames": (0, 1, 2, 3),
    "pause_frames": (10, 15, 20, 30),
    "long_l_frames": (8, 12, 16),
    "diphthong_split": (0.5, 0.6, 0.7),
    "tween": (True, False),
}



# The rules as first written by hand, before any tuning: the point to compare with.
HAND_WRITTEN = {"pause_frames": 30, "long_l_frames": 8, "diphthong_split": 0.6, "lead_frames": 0,
                "tween": True}


def admissible(rules) -> bool:
    """What the frame score cannot see, so the choice is bounded by hand: in-between
    shapes smooth a jump from closed to wide open (motion, not any one frame), and a
    mouth that shuts for a pause under 150 ms (fewer than four frames at 24 fps)
    reads as chattering."""
    return rules.tween and rules.pause_frames >= 15


def clips(espeak: Espeak, work: Path, held_out: bool) -> list[dict]:
    """Labelled clips, decoded with and without the transcript (each decode done once)."""
    from farm.audio import decode_audio
    from node.lipsync.engine import analyse, transcript_words

    out = []
    for i, (voice, wpm) in enumerate(VOICES):
        # Tuning: sentences three apart; held out: neighbours, a different speed.
        step, first = (1, 5 + i) if held_out else (3, i)
        text = " ".join(SENTENCES[(first + step * k) % len(SENTENCES)] for k in range(2))
        path = work / f"{'h' if held_out else 't'}{i}.wav"
        phones, _ = espeak.say(text, voice, wpm + (20 if held_out else 0), path)
        samples = decode_audio(path)
        out.append({"phones": phones, "duration": samples.size / 16000,
                    "with transcript": analyse(samples, 16000, transcript_words(text), 1),
                    "without": analyse(samples, 16000, [], 1)})
    return out


def evaluate(rules, data: list[dict]) -> dict:
    from node.lipsync.engine import timeline_from

    total = sum(c["duration"] for c in data)
    out = {}
    for mode in ("with transcript", "without"):
        strict = tolerant = 0.0
        for c in data:
            s, t = score(timeline_from(c[mode], rules), c["phones"], c["duration"])
            strict += s * c["duration"]
            tolerant += t * c["duration"]
        out[mode] = (strict / total, tolerant / total)
    out["objective"] = sum(sum(v) for v in out.values()) / 4
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "tune_shapes.json")
    args = ap.parse_args()
    from node.lipsync.shapes import RULES

    espeak = Espeak()
    with tempfile.TemporaryDirectory() as tmp:
        tune = clips(espeak, Path(tmp), held_out=False)
        held = clips(espeak, Path(tmp), held_out=True)
    results = []
    for values in itertools.product(*GRID.values()):
        rules = replace(RULES, **dict(zip(GRID, values)))
        results.append((evaluate(rules, tune), rules))
    results.sort(key=lambda r: -r[0]["objective"])
    names = list(GRID)
    print(f"\n{len(results)} rule sets on {len(tune)} tuning clips "
          f"({sum(c['duration'] for c in tune):.0f} s); best {args.top}, then the current defaults and the hand-written rules\n")
    print("| " + " | ".join(names) + " | with transcript strict / tol | without strict / tol | objective |")
    print("|" + " --- |" * (len(names) + 3))
    hand = replace(RULES, **HAND_WRITTEN)
    current = evaluate(RULES, tune)
    for res, rules in results[:args.top] + [(current, RULES), (evaluate(hand, tune), hand)]:
        print("| " + " | ".join(str(getattr(rules, n)) for n in names)
              + f" | {res['with transcript'][0]:.3f} / {res['with transcript'][1]:.3f}"
              f" | {res['without'][0]:.3f} / {res['without'][1]:.3f} | {res['objective']:.4f} |")
    print("\nbest objective for each value of each rule (all others free)\n")
    print("| rule | " + " | ".join("value: objective" for _ in range(4)) + " |\n| --- |" + " --- |" * 4)
    for n in names:
        cells = [f"{v}: {max(res['objective'] for res, r in results if getattr(r, n) == v):.4f}"
                 for v in GRID[n]]
        print(f"| {n} | " + " | ".join(cells + [""] * (4 - len(cells))) + " |")
    best = next(r for res, r in results if admissible(r))
    print(f"\nchosen (best admissible): {asdict(best)}")
    held_res = {"chosen on tuning": evaluate(best, held), "current defaults": evaluate(RULES, held),
                "hand-written": evaluate(hand, held)}
    print(f"\nheld-out clips ({sum(c['duration'] for c in held):.0f} s)\n")
    print("| rules | with transcript strict / tol | without strict / tol | objective |\n| --- | --- | --- | --- |")
    for name, res in held_res.items():
        print(f"| {name} | {res['with transcript'][0]:.3f} / {res['with transcript'][1]:.3f}"
              f" | {res['without'][0]:.3f} / {res['without'][1]:.3f} | {res['objective']:.4f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "bench": "tune_shapes", "grid": GRID, "best": asdict(best), "current": asdict(RULES),
        "tuning": [{"rules": asdict(r), **res} for res, r in results[:args.top]],
        "held_out": held_res}, indent=2) + "\n")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
