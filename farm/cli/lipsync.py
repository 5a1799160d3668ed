"""`toonz lipsync`: audio to mouth cues in Rhubarb Lip Sync's formats, on this machine.

Takes Rhubarb's own long flags too (`--dialogFile`, `--exportFormat`, ...), so
scripts and plug-ins written for `rhubarb` can call `toonz lipsync` instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from farm.presets import RECOGNIZERS

FORMATS = ("tsv", "json", "xml", "dat")
# What -o's extension says when -f is not given; otherwise TSV, Rhubarb's default.
_FORMAT_BY_SUFFIX = {".tsv": "tsv", ".txt": "tsv", ".json": "json", ".xml": "xml", ".dat": "dat"}

DESCRIPTION = """\
Lip-sync AUDIO: find when each speech sound is made and write the mouth shape to
show for it, in the formats of Rhubarb Lip Sync (so Moho, OpenToonz, Papagayo-NG,
Spine or a game engine read the result as they read Rhubarb's).

Mouth shapes (Rhubarb's):
  A closed (P B M)       B slightly open (most consonants, EE)   C open (EH AE)
  D wide open (AA)       E slightly rounded (AO ER)              F puckered (UW OW W)
  G teeth on lip (F V)   H tongue raised (long L)                X rest (silence)
G, H and X are the extended shapes; a character without them gets A for G and X,
and C for H (--extended-shapes).

With a transcript (-d) the words are aligned to the audio: the best mouths, and
word timings. A transcript that does not match the audio is used where it fits;
the rest is recognised. Without one, speech sounds are recognised directly."""

EPILOG = """\
formats (-f):
  tsv   start time and shape per line, then the end time with X (Rhubarb's default)
  json  {"metadata": {...}, "mouthCues": [{"start", "end", "value"}, ...]}
  xml   <rhubarbResult> with <mouthCue start= end=>shape</mouthCue> elements
  dat   Moho / OpenToonz switch data: "MohoSwitch1", then "FRAME SHAPE" lines,
        frames counted from 1 at --dat-frame-rate
  Without -f, the extension of -o decides (.json, .xml, .dat, else tsv).

examples:
  toonz lipsync speech.wav -d speech.txt -f json -o speech.json
  toonz lipsync speech.mp3 --extended-shapes GX -f dat --dat-frame-rate 30 -o mouth.dat
  toonz lipsync hola.ogg -r phonetic            # speech in another language
  toonz lipsync speech.wav --exportFormat xml   # Rhubarb's flags work too

Audio: anything FFmpeg decodes, any sample rate, mono or stereo, up to 3600 s.
Errors print one line, "toonz lipsync: error: MESSAGE [CODE]", and exit with 2."""


def add_parser(sub) -> None:
    ls = sub.add_parser("lipsync", help="lip-sync AUDIO to mouth cues (Rhubarb's formats)",
                        description=DESCRIPTION, epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ls.add_argument("audio", type=Path, help="speech audio in any common format (wav, mp3, m4a, ogg...)")
    ls.add_argument("-d", "--dialog-file", "--dialogFile", dest="dialog_file", type=Path, metavar="FILE",
                    help="UTF-8 text of what is said, aligned to the audio (English)")
    ls.add_argument("-f", "--export-format", "--exportFormat", dest="fmt", choices=FORMATS, metavar="FORMAT",
                    help="output format: tsv, json, xml or dat (see below)")
    ls.add_argument("-o", "--output", type=Path, metavar="FILE", help="output file (default: standard output)")
    ls.add_argument("--extended-shapes", "--extendedShapes", dest="extended_shapes", default="GHX",
                    metavar="SHAPES", help="which of G, H, X the character has (default GHX; '' for none)")
    ls.add_argument("-r", "--recognizer", choices=RECOGNIZERS, default="pocketsphinx",
                    metavar="RECOGNIZER",
                    help="pocketsphinx: English; aligns the transcript, or without -d hears the "
                         "words first (default); phonetic: speech sounds only, for any language, "
                         "5x faster without -d (ignores -d)")
    ls.add_argument("--dat-frame-rate", "--datFrameRate", dest="dat_frame_rate", type=float, default=24.0,
                    metavar="FPS", help="frame rate of the dat format, 24 to 100 (default 24)")
    ls.add_argument("--dat-use-preston-blair", "--datUsePrestonBlair", dest="dat_preston_blair",
                    action="store_true", help="dat: name shapes MBP, etc, E, AI, O, U, FV, L, rest")
    ls.add_argument("--threads", type=int, metavar="N",
                    help="worker processes for long audio (default: one per CPU)")
    ls.add_argument("-q", "--quiet", action="store_true", help="accepted for Rhubarb's scripts; "
                    "toonz lipsync prints nothing but the result and errors anyway")
    ls.set_defaults(func=run_lipsync)


def run_lipsync(args: argparse.Namespace) -> int:
    from farm.errors import InvalidInput
    from farm.timeline import check_dat_frame_rate, check_extended_shapes
    from node.lipsync import lipsync_file

    fmt = args.fmt or (_FORMAT_BY_SUFFIX.get(args.output.suffix.lower(), "tsv") if args.output else "tsv")
    extended = check_extended_shapes(args.extended_shapes.upper())
    check_dat_frame_rate(args.dat_frame_rate)
    if args.threads is not None and args.threads < 1:
        raise InvalidInput(f"--threads must be at least 1, got {args.threads}", code="invalid_threads")
    if not args.audio.is_file():
        raise FileNotFoundError(2, "no such audio file", str(args.audio))
    transcript = _read_transcript(args.dialog_file) if args.dialog_file else None
    timeline = lipsync_file(args.audio, transcript, recognizer=args.recognizer, workers=args.threads)
    text = timeline.export(fmt, sound_file=os.path.abspath(args.audio), extended_shapes=extended,
                           dat_frame_rate=args.dat_frame_rate, dat_preston_blair=args.dat_preston_blair)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _read_transcript(path: Path) -> str:
    """The dialog file's text (UTF-8, a BOM allowed), refused early when it is huge."""
    from farm.errors import InvalidInput
    from node.lipsync.engine import MAX_TRANSCRIPT_CHARS

    if path.stat().st_size > 4 * MAX_TRANSCRIPT_CHARS:  # 4 bytes per character at most
        raise InvalidInput(f"the dialog file {path} is larger than {4 * MAX_TRANSCRIPT_CHARS:,} bytes",
                           code="transcript_too_long")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the dialog file {path} is not UTF-8 text (byte {exc.start})",
                           code="unreadable_transcript") from None
