"""The demo: start the farm with `toonz up`, render a real speech clip through the SDK.

    bash scripts/demo.sh [--quality standard] [--audio FILE --transcript-file FILE] [-o OUT]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from farm.client import ToonzClient  # noqa: E402


def start_farm(data_dir: Path) -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen([sys.executable, "-m", "farm.cli.main", "up", "--port", "0",
                             "--data-dir", str(data_dir)], stdout=subprocess.PIPE, text=True)
    console = key = ""
    deadline = time.monotonic() + 60
    while not (console and key):
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            proc.kill()
            sys.exit(f"demo: `toonz up` did not start; see {data_dir / 'logs'}")
        print(f"  [toonz up] {line.rstrip()}")
        if line.startswith("Console: "):
            console = line.split(" ", 1)[1].strip()
        elif line.startswith("API key: "):
            key = line.split(" ", 2)[2].strip()
    return proc, console.rsplit("/console", 1)[0], key


def main() -> int:
    p = argparse.ArgumentParser(description="Render a speech clip through a local farm.")
    p.add_argument("--audio", type=Path, default=REPO / "assets/samples/goforward.wav")
    p.add_argument("--transcript-file", type=Path, default=REPO / "assets/samples/goforward.txt")
    p.add_argument("--quality", default="standard")
    p.add_argument("--data-dir", type=Path, default=REPO / ".toonz" / "demo")
    p.add_argument("-o", "--output", type=Path, default=REPO / "out" / "demo.mp4")
    args = p.parse_args()

    print("demo: starting the farm (redis-server, scheduler, one node)…")
    farm, url, key = start_farm(args.data_dir)
    try:
        client = ToonzClient(base_url=url, api_key=key)
        job = client.create_animation(audio_path=args.audio,
                                      transcript=args.transcript_file.read_text().strip(),
                                      template="explainer", quality=args.quality)
        print(f"demo: submitted {job.job_id} (${job.price:.2f}, eta {job.eta_s:.0f} s)")
        t0 = time.monotonic()
        result = client.wait_for_completion(job.job_id, timeout=600, progress=True)
        out = client.download(job.job_id, args.output)
        client.download(job.job_id, args.output.with_suffix(".timeline.json"), artifact="timeline.json")
        usage = client.get_usage()
        print(f"demo: {result.state} in {time.monotonic() - t0:.1f} s on {result.raw.get('node')}; "
              f"renders remaining this month: {usage['renders_remaining']}")
        print(f"demo: wrote {out}")
        return 0
    finally:
        farm.send_signal(signal.SIGTERM)
        try:
            farm.wait(30)
        except subprocess.TimeoutExpired:
            farm.kill()


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
