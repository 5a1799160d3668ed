"""Lip-sync speed, memory and quality.

    .venv/bin/python bench/lipsync.py [--runs 5] [--seconds 60] [--long-seconds 600]

Speed: `toonz lipsync` as a whole process (interpreter start, imports, decoding,
lip sync, writing Rhubarb JSON), with and without the transcript (without one the
words are heard first, then aligned) and with the phonetic recognizer (the phone
loop), on a narration of --seconds or more synthesized with espeak-ng; real-time
factor = audio seconds over wall seconds, median of --runs, the modes alternating
so all see the same load; also the CPU seconds of all its processes. Memory, on that clip and on
a --long-seconds one: the largest process's peak RSS and the peak of all its
processes' proportional set sizes (workers included, sampled every 20 ms).

Quality: clips synthesized through libespeak-ng, whose phoneme events say which
phoneme sounds when. Score = the share of 10 ms frames (inside the clip) whose
shape the reference phoneme allows (REFERENCE below: a phoneme allows the shapes
Rhubarb's README gives its sound, plus those coarticulation makes equally right);
"tolerant" also accepts a shape the neighbouring phoneme allows within 42 ms (one
video frame at 24 fps): animators lead sounds by a frame. For scale, the same
score for a mouth that only opens (B) while the audio is loud and rests (X)
otherwise. Word timing: median distance between aligned and espeak's word starts.

Rhubarb Lip Sync, the reference: when its binary is present (`bash scripts/get-rhubarb.sh`
puts Rhubarb 1.13.0 under .tools/rhubarb; or pass --rhubarb PATH), the same quality
score for its output on the same clips, with and without the dialog file, and its
real-time factor on the speed clip (its own threads, one per CPU).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SENTENCES = [
    "Welcome to the farm. Today we will look at how a render farm turns a voice into a moving picture.",
    "First, the audio is split into sounds, and each sound becomes a mouth shape on the screen.",
    "My mother baked bread and pie for the big family picnic on Sunday afternoon by the lake.",
    "Peter Piper picked a peck of pickled peppers from the market near the old stone bridge.",
    "The scheduler hands each job to a node, which keeps its lease alive with a steady heartbeat.",
    "Please remember to water the plants while I am away, especially the tall fern in the kitchen.",
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
    "A good teacher explains the idea, shows an example, and then lets the students try it.",
    "Thunder rolled over the valley as the farmers hurried to bring the cattle into the barn.",
    "Every morning the baker opens his shop, lights the oven, and waits for the first customer.",
]
# (voice, words a minute) for the labelled clips: two accents, three speakers, four speeds.
VOICES = [("en-us", 150), ("en-us+f3", 175), ("en-gb", 130), ("en-us+m3", 195), ("en-us+f2", 165)]
OPEN, ALL = set("BCDEFH"), set("ABCDEFGHX")
REFERENCE = {  # espeak-ng IPA (length marks dropped) -> allowed shapes
    "p": "A", "b": "A", "m": "A", "f": "G", "v": "G", "w": "FE", "ʍ": "FE",
    "l": "HBCEF", "əl": "HBC", "ɹ": "BEF", "r": "BEF", "n": "BCFH", "k": "BCEF", "ɡ": "BCEF",
    "g": "BCEF", "ŋ": "BCEF", "j": "BCF", "ɾ": "BCD", "ʔ": "BCD", "h": "BCDEFHX",
    **{c: "BCF" for c in ("t", "d", "s", "z", "θ", "ð", "ʃ", "ʒ", "tʃ", "dʒ")},
    "ɑ": "CD", "a": "CD", "ʌ": "CD", "æ": "CD", "ɛ": "CB", "e": "CB", "ɪ": "BC", "i": "BC",
    "ᵻ": "BC", "ə": "BC", "ɐ": "BC", "ɚ": "EBC", "ɜ": "EBC", "ɔ": "ED", "ɒ": "ED", "oʊ": "EF",
    "əʊ": "EF", "o": "EF", "u": "FE", "ʊ": "FE", "aɪ": "CDB", "aʊ": "CDEF", "eɪ": "CB",
    "ɔɪ": "EBC", "iə": "BC", "ɪə": "BC", "eə": "CB", "ʊə": "FEC",
}
SHORT_PAUSE_S = 0.3  # shorter pauses may hold a relaxed mouth (B), as Rhubarb's do
TOLERANCE_S = 0.042
RHUBARB = REPO / ".tools" / "rhubarb" / "rhubarb"


def allowed(phone: str, length_s: float) -> set[str]:
    """The shapes a reference phoneme allows."""
    if not phone:
        return {"X", "A", "B"} if length_s < SHORT_PAUSE_S else {"X", "A"}
    p = phone.replace("ː", "")
    if p in REFERENCE:
        return set(REFERENCE[p])
    if p.endswith("ɹ") and p[:-1] in REFERENCE:  # r-coloured vowels
        return set(REFERENCE[p[:-1]]) | set("BEF")
    return set(REFERENCE.get(p[:2], REFERENCE.get(p[:1], "".join(OPEN))))


class Espeak:
    """libespeak-ng in synchronous mode: audio plus phoneme and word events."""

    class _Event(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                    ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                    ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                    ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libespeak-ng.so.1")
        # AUDIO_OUTPUT_SYNCHRONOUS; phoneme events, named in IPA.
        self.rate = self.lib.espeak_Initialize(2, 0, None, 0x0001 | 0x0002)
        callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                    ctypes.POINTER(self._Event))
        self._callback = callback(self._on_audio)  # kept alive: libespeak holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.audio: list[bytes] = []
        self.events: list[tuple[str, int, str]] = []

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self.audio.append(ctypes.string_at(wav, 2 * n))
        i = 0
        while events[i].type != 0:  # espeakEVENT_LIST_TERMINATED
            e = events[i]
            if e.type in (1, 7):  # WORD, PHONEME
                self.events.append(("word" if e.type == 1 else "phone", e.sample,
                                    e.id.decode("utf-8", "replace") if e.type == 7 else ""))
            i += 1
        return 0

    def say(self, text: str, voice: str, wpm: int, path: Path) -> tuple[list, list]:
        """Write `text` to the WAV `path`; return phone intervals [(phone, start_s,
        end_s)] and word starts in seconds."""
        self.audio, self.events = [], []
        self.lib.espeak_SetVoiceByName(voice.encode())
        self.lib.espeak_SetParameter(1, wpm, 0)  # espeakRATE
        data = text.encode()
        self.lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(self.rate)
            w.writeframes(b"".join(self.audio))
        end = self.seconds()
        marks = [(s / self.rate, p) for kind, s, p in self.events if kind == "phone"]
        phones = [(p, a, b) for (a, p), (b, _) in zip(marks, marks[1:] + [(end, "")]) if b > a]
        return phones, [s / self.rate for kind, s, _ in self.events if kind == "word"]

    def seconds(self) -> float:
        """How long the last text spoken lasts."""
        return sum(len(chunk) for chunk in self.audio) / 2 / self.rate


def narration(espeak: Espeak, seconds: float, path: Path) -> tuple[Path, Path, float]:
    """A clip of whole sentences lasting at least `seconds`, and its transcript."""
    n = max(1, round(seconds / 6))  # a sentence lasts about 6 s
    while True:
        text = " ".join(SENTENCES[k % len(SENTENCES)] for k in range(n))
        espeak.say(text, "en-us", 160, path)
        if espeak.seconds() >= seconds:
            break
        n += 1 + round((seconds - espeak.seconds()) / 6)
    transcript = path.with_suffix(".txt")
    transcript.write_text(text)
    return path, transcript, espeak.seconds()


def run_cli(audio: Path, transcript: Path | None, out: Path, sample_memory: bool = False,
            recognizer: str | None = None) -> dict:
    """One whole `toonz lipsync` process: wall seconds, CPU seconds (workers included),
    and when `sample_memory`, the peak RSS of its largest process and the peak PSS
    of all of them, sampled every 20 ms. (Not ru_maxrss: Linux carries the forking
    parent's RSS across exec into it.)"""
    import psutil

    cmd = [sys.executable, "-m", "farm.cli.main", "lipsync", str(audio), "-f", "json", "-o", str(out)]
    if transcript:
        cmd += ["-d", str(transcript)]
    if recognizer:
        cmd += ["-r", recognizer]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO)
    largest = tree = 0
    parent = psutil.Process(proc.pid)
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG if sample_memory else 0)
        if pid:  # wait4 itself reaps, so that the CPU times cover the workers too
            break
        try:  # PSS: pages the forked workers share with the parent count once
            infos = [p.memory_full_info() for p in [parent] + parent.children(recursive=True)]
            largest = max(largest, max(i.rss for i in infos))
            tree = max(tree, sum(i.pss for i in infos))
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "max_rss_mb": largest / 2**20, "tree_peak_mb": tree / 2**20}


def score(timeline, phones: list, duration: float) -> tuple[float, float]:
    """(strict, tolerant) share of 10 ms frames whose shape the reference allows."""
    frames = int(duration * 100)
    ref = [set()] * frames
    for p, a, b in phones:
        ok = allowed(p, b - a)
        for t in range(int(a * 100), min(frames, int(b * 100))):
            ref[t] = ok
    shapes = [timeline.shape_at(t / 100 + 0.005) for t in range(frames)]
    pad = round(TOLERANCE_S * 100)
    strict = sum(s in r for s, r in zip(shapes, ref))
    tolerant = sum(s in ref[t] or any(s in ref[u] for u in range(max(0, t - pad), min(frames, t + pad + 1)))
                   for t, s in enumerate(shapes))
    return strict / frames, tolerant / frames


def rhubarb(binary: Path, audio: Path, dialog: Path | None, out: Path) -> tuple[object, float]:
    """Run Rhubarb on `audio`: its timeline and the wall seconds it took."""
    from farm.timeline import Timeline

    cmd = [str(binary), "-q", "-f", "json", "-o", str(out)] + (["-d", str(dialog)] if dialog else [])
    t0 = time.perf_counter()
    subprocess.run(cmd + [str(audio)], check=True)
    wall = time.perf_counter() - t0
    return Timeline.from_rhubarb_json(json.loads(out.read_text())), wall


def word_error_rate(said: list[list[str]], heard: list[list[str]]) -> float:
    """Word error rate (substitutions, deletions, insertions over words said), summed over clips."""
    errors = total = 0
    for ref, hyp in zip(said, heard):
        row = list(range(len(hyp) + 1))  # edit distance, one row at a time
        for i, r in enumerate(ref, 1):
            prev, row[0] = row[0], i
            for j, h in enumerate(hyp, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
        errors += row[-1]
        total += len(ref)
    return errors / max(1, total)


def quality(espeak: Espeak, work: Path, rhubarb_bin: Path | None = None) -> dict:
    from farm.audio import decode_audio
    from farm.timeline import MouthCue, Timeline
    from node.lipsync import energy, lipsync
    from node.lipsync.text import normalize_transcript

    modes: dict[str, list] = {"with transcript": [], "without (words heard)": [],
                              "phonetic (phone loop)": [], "loudness only (B/X)": []}
    if rhubarb_bin:
        modes |= {"Rhubarb 1.13, dialog file": [], "Rhubarb 1.13, no dialog": []}
    word_errors, seconds, heard, said = [], 0.0, [], []
    for i, (voice, wpm) in enumerate(VOICES * 2):
        text = " ".join(SENTENCES[(2 * i + k) % len(SENTENCES)] for k in range(2))
        phones, word_starts = espeak.say(text, voice, wpm - 15 * (i // len(VOICES)), work / f"q{i}.wav")
        samples = decode_audio(work / f"q{i}.wav")
        duration = samples.size / 16000
        seconds += duration
        aligned = lipsync(samples, text, workers=1)
        levels = energy.measure(samples)
        flap = Timeline(duration, tuple(MouthCue(t / 100, min(duration, (t + 1) / 100), "X" if q else "B")
                                        for t, q in enumerate(levels.quiet)))
        recognised = lipsync(samples, workers=1)
        heard.append([w.word for w in recognised.words])
        said.append(normalize_transcript(text))
        for mode, tl in (("with transcript", aligned), ("without (words heard)", recognised),
                         ("phonetic (phone loop)", lipsync(samples, workers=1, recognizer="phonetic")),
                         ("loudness only (B/X)", flap)):
            modes[mode].append((score(tl, phones, duration), duration))
        if rhubarb_bin:
            (work / f"q{i}.txt").write_text(text)
            for mode, dialog in (("Rhubarb 1.13, dialog file", work / f"q{i}.txt"),
                                 ("Rhubarb 1.13, no dialog", None)):
                tl, _ = rhubarb(rhubarb_bin, work / f"q{i}.wav", dialog, work / "r.json")
                modes[mode].append((score(tl, phones, duration), duration))
        if len(aligned.words) == len(normalize_transcript(text)) == len(word_starts):
            word_errors += [abs(w.start - s) for w, s in zip(aligned.words, word_starts)]
    out = {mode: {"strict": sum(s[0] * d for s, d in rows) / seconds,
                  "tolerant": sum(s[1] * d for s, d in rows) / seconds} for mode, rows in modes.items()}
    out["clips"], out["seconds"], out["modes"] = len(VOICES) * 2, seconds, list(modes)
    out["words_heard_word_error_rate"] = word_error_rate(said, heard)
    out["word_start_error_ms_median"] = 1000 * statistics.median(word_errors) if word_errors else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=60.0, help="speed clip, at least this long")
    ap.add_argument("--long-seconds", type=float, default=600.0, help="memory clip, at least this long")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "lipsync.json")
    ap.add_argument("--rhubarb", type=Path, default=RHUBARB,
                    help="Rhubarb binary to compare with (default: %(default)s, if present)")
    ap.add_argument("--quality-only", action="store_true", help="skip the speed and memory runs")
    args = ap.parse_args()
    rhubarb_bin = args.rhubarb if args.rhubarb.is_file() else None
    espeak = Espeak()
    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    speed, memory, seconds, long_seconds = {}, {}, 0.0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # First: libespeak-ng carries state from one text to the next, so the labelled
        # clips are the same from run to run only as the first texts it speaks.
        qual = quality(espeak, work, rhubarb_bin)
        if not args.quality_only:
            speed, memory, seconds, long_seconds = measure_speed(espeak, work, args, rhubarb_bin)
    load = (load_before, os.getloadavg()[0])
    print(f"\nlip sync, {os.cpu_count()} CPUs (load average {load[0]:.1f} before, {load[1]:.1f} after)")
    if speed:
        print_speed(speed, memory, seconds, long_seconds, args.runs)
    print(f"\nquality on {qual['clips']} labelled clips ({qual['seconds']:.0f} s), share of 10 ms frames "
          "whose shape the espeak-ng phoneme allows\n")
    print("| mode | strict | within 42 ms |\n| --- | --- | --- |")
    for mode in qual["modes"]:
        print(f"| {mode} | {qual[mode]['strict']:.3f} | {qual[mode]['tolerant']:.3f} |")
    print(f"\nword starts (with transcript): median error {qual['word_start_error_ms_median']:.0f} ms")
    print(f"words heard without a transcript: word error rate {qual['words_heard_word_error_rate']:.2f}")
    result = {"bench": "lipsync", "runs": args.runs, "clip_s": seconds, "long_clip_s": long_seconds,
              "speed": speed, "memory": memory, "quality": qual, "cpus": os.cpu_count(), "load_average": load,
              "rhubarb": str(rhubarb_bin) if rhubarb_bin else None,
              "machine": platform.machine(), "python": platform.python_version(),
              "when": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json}")


def measure_speed(espeak: Espeak, work: Path, args, rhubarb_bin: Path | None) -> tuple:
    """Whole-process real-time factors (ours alternating with Rhubarb's when present) and
    peak memory on the speed clip and the long clip."""
    clip, text, seconds = narration(espeak, args.seconds, work / "clip.wav")
    runs: dict[str, list[dict]] = {"with transcript": [], "without": [], "phonetic": []}
    rh_runs: dict[str, list[float]] = {"with transcript": [], "without": []}
    run_cli(clip, text, work / "warm.json")  # first run warms the page cache
    for _ in range(args.runs):
        runs["with transcript"].append(run_cli(clip, text, work / "a.json"))
        runs["without"].append(run_cli(clip, None, work / "b.json"))
        runs["phonetic"].append(run_cli(clip, None, work / "p.json", recognizer="phonetic"))
        if rhubarb_bin:  # Rhubarb takes tens of seconds a run: once per round is plenty
            rh_runs["with transcript"].append(rhubarb(rhubarb_bin, clip, text, work / "r.json")[1])
            rh_runs["without"].append(rhubarb(rhubarb_bin, clip, None, work / "r.json")[1])
    long_clip, long_text, long_seconds = narration(espeak, args.long_seconds, work / "long.wav")
    memory = {f"{length:.0f} s": {"with transcript": run_cli(audio, words, work / "c.json", True),
                                  "without": run_cli(audio, None, work / "d.json", True)}
              for audio, words, length in ((clip, text, seconds), (long_clip, long_text, long_seconds))}
    speed = {mode: {"rtf_median": statistics.median(seconds / r["wall_s"] for r in rs),
                    "wall_s": [round(r["wall_s"], 3) for r in rs],
                    "cpu_s_median": statistics.median(r["cpu_s"] for r in rs),
                    "rhubarb_rtf_median": (statistics.median(seconds / w for w in rh_runs[mode])
                                           if rh_runs.get(mode) else None)}
             for mode, rs in runs.items()}
    return speed, memory, seconds, long_seconds


def print_speed(speed: dict, memory: dict, seconds: float, long_seconds: float, runs: int) -> None:
    print(f"speed clip {seconds:.1f} s, memory clip {long_seconds:.1f} s; median of {runs} "
          "whole-process runs\n")
    print("| what | with transcript | without |\n| --- | --- | --- |")
    print(f"| real-time factor, {seconds:.0f} s clip (wall) | {speed['with transcript']['rtf_median']:.1f}x "
          f"| {speed['without']['rtf_median']:.1f}x |")
    if speed["with transcript"]["rhubarb_rtf_median"]:
        print(f"| Rhubarb 1.13 real-time factor, same clip | "
              f"{speed['with transcript']['rhubarb_rtf_median']:.2f}x | "
              f"{speed['without']['rhubarb_rtf_median']:.2f}x |")
    print(f"| real-time factor, phonetic recognizer (phone loop) | | "
          f"{speed['phonetic']['rtf_median']:.1f}x |")
    print(f"| CPU seconds (all processes), {seconds:.0f} s clip | {speed['with transcript']['cpu_s_median']:.2f} "
          f"| {speed['without']['cpu_s_median']:.2f} |")
    print(f"| real-time factor, {long_seconds:.0f} s clip (wall, one run) | "
          + " | ".join(f"{long_seconds / memory[f'{long_seconds:.0f} s'][m]['wall_s']:.1f}x"
                       for m in ("with transcript", "without")) + " |")
    for clip_name, runs_ in memory.items():
        for key, name in (("max_rss_mb", "largest process peak RSS, MB"),
                          ("tree_peak_mb", "all processes peak PSS, MB")):
            print(f"| {clip_name} clip: {name} | {runs_['with transcript'][key]:.0f} "
                  f"| {runs_['without'][key]:.0f} |")


if __name__ == "__main__":
    main()
