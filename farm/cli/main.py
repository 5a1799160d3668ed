"""`toonz`: the farm's command line. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys

from farm.cli import admin, autoscale, daemons, lipsync, local, submit, up

EPILOG = """\
Quick start:
  toonz up                                   # the whole farm on this machine
  toonz submit speech.wav --transcript-file speech.txt -o out.mp4
  toonz render speech.wav --transcript "Hello there" -o hello.mp4   # no farm needed

Settings also come from the environment: TOONZ_REDIS_URL, TOONZ_SCHEDULER_URL,
TOONZ_DATA_DIR, TOONZ_PORT, TOONZ_API_KEY (flags win over the environment).
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="toonz", description="Toonz Farm: narration audio in, lip-synced 2D animation out.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    up.add_parser(sub)
    daemons.add_parsers(sub)
    local.add_parsers(sub)
    lipsync.add_parser(sub)
    submit.add_parser(sub)
    admin.add_parser(sub)
    autoscale.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from farm.errors import ToonzError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ToonzError as exc:
        print(f"toonz {args.command}: error: {exc.message} [{exc.code}]", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"toonz {args.command}: error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"toonz {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
