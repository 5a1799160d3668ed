"""`toonz render` and `toonz lipsync`: the node's work on this machine, no farm needed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from farm.presets import QUALITIES


def add_parsers(sub) -> None:
    r = sub.add_parser(
        "render", help="render one video locally (no farm)",
        description="Render AUDIO to a lip-synced animation on this machine, without a farm.",
        epilog="examples:\n  toonz render speech.wav --transcript-file speech.txt -o out.mp4\n"
               "  toonz render speech.wav --timeline cues.json --quality hd -o out.mp4\n"
               "--timeline takes Rhubarb Lip Sync's JSON export and skips lip sync.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("audio", type=Path, help="speech audio in any common format (wav, mp3, m4a, ogg…)")
    src = r.add_mutually_exclusive_group()
    src.add_argument("--transcript", help="what is said, to align (better mouths than recognition)")
    src.add_argument("--transcript-file", type=Path, help="the transcript, from a text file")
    src.add_argument("--timeline", type=Path, help="mouth cues in Rhubarb JSON format")
    r.add_argument("--template", default="explainer", help="scene template (default explainer)")
    r.add_argument("--character", default="toonz", help="character (default toonz)")
    r.add_argument("--quality", default="standard", choices=list(QUALITIES),
                   help="preview 640x360@24, standard 1280x720@30, hd 1920x1080@30, ultra 3840x2160@60")
    r.add_argument("--format", default="mp4", choices=["mp4"], help="container (mp4: H.264 + AAC)")
    r.add_argument("--title", help="title shown by the template")
    r.add_argument("-o", "--output", type=Path, required=True, help="where to write the video")
    r.set_defaults(func=run_render)

    ls = sub.add_parser(
        "lipsync", help="lip-sync AUDIO to mouth cues (Rhubarb JSON)",
        description="Recognise or align speech and write mouth cues in Rhubarb Lip Sync's JSON "
                    "format (shapes A-H and X).")
    ls.add_argument("audio", type=Path, help="speech audio in any common format")
    ls.add_argument("-d", "--dialog-file", "--dialogFile", dest="dialog_file", type=Path,
                    help="transcript of the audio (aligned instead of recognised)")
    ls.add_argument("-f", "--export-format", "--exportFormat", dest="fmt", default="json",
                    choices=["json"], help="output format (json)")
    ls.add_argument("-o", "--output", type=Path, help="output file (default: standard output)")
    ls.set_defaults(func=run_lipsync)


def run_render(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from farm.timeline import Timeline
    from node.pipeline import render

    transcript = args.transcript
    if args.transcript_file:
        transcript = args.transcript_file.read_text(encoding="utf-8")
    timeline = None
    if args.timeline:
        timeline = Timeline.from_rhubarb_json(_read_json(args.timeline))
    _need_file(args.audio)
    _check_inputs(args)  # before the progress bar, so a bad input is one clean line
    with tqdm(total=100, unit="%", desc="render", bar_format="{desc}: {percentage:3.0f}%|{bar}| "
              "{elapsed}<{remaining}") as bar:
        def progress(frac: float) -> None:
            bar.n = round(frac * 100)
            bar.refresh()

        result = render(args.audio, args.output, transcript=transcript, timeline=timeline,
                        template=args.template, character=args.character, quality=args.quality,
                        title=args.title, progress=progress)
    print(f"wrote {result.video} ({result.frames} frames in {result.seconds:.1f} s, "
          f"{result.frames / result.seconds:.0f} frames/s); cues in {result.timeline}")
    return 0


def run_lipsync(args: argparse.Namespace) -> int:
    from node.lipsync import lipsync_file

    _need_file(args.audio)
    transcript = args.dialog_file.read_text(encoding="utf-8") if args.dialog_file else None
    timeline = lipsync_file(args.audio, transcript)
    text = timeline.to_json_text(sound_file=str(args.audio)) if _takes_sound_file(timeline) \
        else timeline.to_json_text()
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _takes_sound_file(timeline) -> bool:
    import inspect
    return "sound_file" in inspect.signature(timeline.to_json_text).parameters


def _check_inputs(args: argparse.Namespace) -> None:
    from assets.loader import load_character, load_template
    from farm.audio import probe_duration

    load_template(args.template)
    load_character(args.character)
    probe_duration(args.audio)


def _need_file(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(2, "no such audio file", str(path))


def _read_json(path: Path) -> dict:
    from farm.errors import InvalidInput
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not JSON: {exc}", code="invalid_timeline") from None
