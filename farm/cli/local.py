"""`toonz render`: the node's work on this machine, no farm needed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assets.loader import list_characters, list_templates
from farm.presets import FORMATS, QUALITIES


def add_parsers(sub) -> None:
    r = sub.add_parser(
        "render", help="render one video locally (no farm)",
        description="Render AUDIO to a lip-synced animation on this machine, without a farm.",
        epilog="examples:\n  toonz render speech.wav --transcript-file speech.txt -o out.mp4\n"
               "  toonz render speech.wav --timeline cues.json --quality hd -o out.mp4\n"
               "  toonz render talk.wav --transcript-file talk.txt --template podcast \\\n"
               "      --second-character bolt --no-captions --logo logo.png -o talk.mp4\n"
               "--timeline takes Rhubarb Lip Sync's JSON export and skips lip sync.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("audio", type=Path, help="speech audio in any common format (wav, mp3, m4a, ogg…)")
    src = r.add_mutually_exclusive_group()
    src.add_argument("--transcript", help="what is said, to align (better mouths than recognition)")
    src.add_argument("--transcript-file", type=Path, help="the transcript, from a text file")
    src.add_argument("--timeline", type=Path, help="mouth cues in Rhubarb JSON format")
    r.add_argument("--template", default="explainer",
                   help=f"scene template: {', '.join(list_templates())} (default explainer)")
    r.add_argument("--character", default="toonz",
                   help=f"character: {', '.join(list_characters())} (default toonz)")
    r.add_argument("--expression", default="neutral",
                   help="the character's expression or pose, such as happy, concerned or "
                        "presenting (default neutral)")
    r.add_argument("--second-character", metavar="CHARACTER",
                   help="who sits beside the character in a two-person template (podcast; "
                        "default: the template's); a transcript with speaker labels "
                        "(NAME: ...) says who speaks when")
    r.add_argument("--quality", default="standard", choices=list(QUALITIES),
                   help="preview 640x360@24, standard 1280x720@30, hd 1920x1080@30, ultra 3840x2160@60")
    r.add_argument("--format", default="mp4", choices=list(FORMATS),
                   help="mp4 (H.264 + AAC), webm (VP9 + Opus) or gif; the output's suffix follows")
    r.add_argument("--title", help="title shown by the template")
    r.add_argument("--captions", action=argparse.BooleanOptionalAction, default=None,
                   help="burn the spoken words in, the word being said highlighted (default: "
                        "as the template says); beside the video, a WebVTT file either way "
                        "(when words were aligned)")
    r.add_argument("--logo", type=Path, help="an image (PNG, JPEG or WebP) for the template's logo box")
    r.add_argument("--watermark", action="store_true", help="mark the video, as the free tier's are")
    r.add_argument("--backend", choices=["auto", "gl", "cpu"],
                   help="compositor (default: TOONZ_RENDER_BACKEND, else auto: GL on a GPU, "
                        "the CPU compositor elsewhere)")
    r.add_argument("-o", "--output", type=Path, required=True, help="where to write the video")
    r.set_defaults(func=run_render)


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
                        format=args.format, title=args.title, progress=progress,
                        captions=args.captions, watermark=args.watermark, logo=args.logo,
                        expression=args.expression, second_character=args.second_character,
                        backend=args.backend)
    print(f"wrote {result.video} ({result.frames} frames in {result.seconds:.1f} s, "
          f"{result.frames / result.seconds:.0f} frames/s); cues in {result.timeline}")
    return 0


def _check_inputs(args: argparse.Namespace) -> None:
    from farm.audio import probe_duration
    from node.pipeline import check_request

    if args.logo is not None and not args.logo.is_file():
        raise FileNotFoundError(2, "no such logo file", str(args.logo))
    check_request(template=args.template, character=args.character, quality=args.quality,
                  format=args.format, expression=args.expression,
                  second_character=args.second_character, logo=args.logo)
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
