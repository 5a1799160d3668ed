"""`toonz submit`: one render through a running farm, with a progress bar."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from farm.presets import FORMATS, QUALITIES


def add_parser(sub) -> None:
    s = sub.add_parser(
        "submit", help="render through a running farm (SDK)",
        description="Submit AUDIO (or --audio-url) to a farm, wait with a progress bar, download.",
        epilog="The farm's URL and key come from --url/--api-key, TOONZ_SCHEDULER_URL/TOONZ_API_KEY, "
               "or --data-dir of a local `toonz up` (which writes DATA_DIR/api-key).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("audio", nargs="?", type=Path, help="audio file to upload")
    s.add_argument("--audio-url", help="let the farm fetch the audio from this URL instead")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--transcript", help="what is said")
    g.add_argument("--transcript-file", type=Path, help="the transcript, from a text file")
    s.add_argument("--template", default="explainer", help="scene template (default explainer)")
    s.add_argument("--character", default=None, help="character (default: the farm's, toonz)")
    s.add_argument("--expression", help="the character's expression or pose (default neutral)")
    s.add_argument("--second-character", metavar="CHARACTER",
                   help="who sits beside the character in a two-person template (podcast)")
    s.add_argument("--quality", default="standard", choices=list(QUALITIES))
    s.add_argument("--format", default="mp4", choices=list(FORMATS),
                   help="mp4 (H.264 + AAC), webm (VP9 + Opus) or gif")
    s.add_argument("--title", help="title shown by the template")
    s.add_argument("--captions", action=argparse.BooleanOptionalAction, default=None,
                   help="burn the spoken words in (default: as the template says)")
    s.add_argument("--logo", help="a logo for the template's logo box: a file to upload, or an "
                                  "http(s) URL the farm fetches")
    s.add_argument("--url", help="scheduler URL (TOONZ_SCHEDULER_URL)")
    s.add_argument("--api-key", help="API key (TOONZ_API_KEY)")
    s.add_argument("--data-dir", type=Path, help="read URL and key from a `toonz up` data folder")
    s.add_argument("--timeout", type=float, default=600, help="seconds to wait (default 600)")
    s.add_argument("--no-wait", action="store_true", help="print the job id and return")
    s.add_argument("-o", "--output", type=Path, help="where to write the video")
    s.set_defaults(func=run_submit)


def farm_endpoint(data_dir: Path | None, url: str | None, key: str | None) -> tuple[str, str]:
    """Resolve the scheduler URL and API key from flags, a data folder, or the environment."""
    import json
    if data_dir is not None:
        info = json.loads((data_dir / "farm.json").read_text())
        url = url or info["scheduler_url"]
        key = key or (data_dir / "api-key").read_text().strip()
    url = url or os.environ.get("TOONZ_SCHEDULER_URL") or "http://127.0.0.1:8000"
    key = key or os.environ.get("TOONZ_API_KEY", "")
    return url, key


def run_submit(args: argparse.Namespace) -> int:
    from farm.client import ToonzClient
    from farm.errors import InvalidInput

    if (args.audio is None) == (args.audio_url is None):
        raise InvalidInput("give an AUDIO file or --audio-url (one of them)", code="invalid_arguments")
    url, key = farm_endpoint(args.data_dir, args.url, args.api_key)
    transcript = args.transcript_file.read_text(encoding="utf-8") if args.transcript_file \
        else args.transcript
    logo_url = args.logo if args.logo and args.logo.startswith(("http://", "https://")) else None
    logo_path = Path(args.logo) if args.logo and logo_url is None else None
    if logo_path is not None and args.audio is None:
        raise InvalidInput("a logo file is uploaded with an AUDIO file; with --audio-url give "
                           "the logo as a URL too", code="invalid_arguments")
    with ToonzClient(base_url=url, api_key=key) as client:
        job = client.create_animation(args.audio, audio_url=args.audio_url, transcript=transcript,
                                      template=args.template, character=args.character,
                                      quality=args.quality, format=args.format, title=args.title,
                                      expression=args.expression, captions=args.captions,
                                      second_character=args.second_character,
                                      logo_path=logo_path, logo_url=logo_url)
        print(f"submitted {job.job_id}: price ${job.price:.2f}, eta {job.eta_s:.0f} s")
        if args.no_wait:
            return 0
        client.wait_for_completion(job.job_id, timeout=args.timeout, progress=True)
        out = args.output or Path(f"{job.job_id}.{args.format}")
        client.download(job.job_id, out)
        print(f"wrote {out}")
    return 0
