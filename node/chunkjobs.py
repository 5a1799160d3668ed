"""Chunked renders on a node: splitting a long render, rendering chunks, stitching.

The node that leases a long MP4 (farm.config.ChunkSettings) lip-syncs it once, stores
its whole timeline (FULL_TIMELINE, exact floats and words, unlike the Rhubarb export),
and splits it into chunk jobs (scheduler/chunkapi.py, farm/lua/split.lua). It renders
the chunks nobody has taken itself (farm/lua/lease_chunk.lua), one after the other,
until none is queued: so a farm whose only node is this one still finishes. Then it
waits for the chunks other nodes render, heartbeating the render with their progress,
fetches their streams, stitches them with the audio (node/chunks.py) and completes the
render: the only completion that charges.

A node that leases a chunk fetches the render's timeline (no audio: a chunk is video
only), rebuilds the render's scene with node.pipeline.prepare and renders its frames
to a bare H.264 stream (CHUNK_VIDEO). The scene is deterministic, so the chunks are
exactly the frames of the render done in one piece.

A render whose node died is leased again: its chunks are kept (split is idempotent), the
ones that succeeded are reused, and the new node waits for (or renders) the rest.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import redis

from farm import keys, presets
from farm.config import ChunkSettings
from farm.errors import StaleLease
from farm.jobs import CHUNK_KIND, Job, JobState
from farm.lease import Lease
from farm.presets import WATERMARKED_TIERS
from farm.timeline import Timeline
from node.daemon import JobStopped
from node.heartbeat import Heartbeat
from node.joblog import LOG_ARTIFACT, JobLog
from node.retry import retry

log = logging.getLogger("toonz.node")

FULL_TIMELINE = "timeline.full.json"  # the render's fitted timeline, as Timeline.to_dict
CHUNK_VIDEO = "video.h264"  # what a chunk job uploads
WAIT_POLL_S = 0.5  # how often the render's node looks at its chunks while it waits
RENDER_SHARE = 0.95  # the render's progress once every chunk is drawn; the stitch is the rest
PROGRESS_READ_S = 1.0  # how often the render's progress is read back from its chunks


class ChunkFailed(Exception):
    """A chunk of the render failed for good (past its attempts)."""


def wants_chunks(job: Job, settings: ChunkSettings) -> bool:
    """Whether the node that leased `job` runs it as chunks: a chunk itself, a render split
    before (whatever this node's settings), or a long enough MP4."""
    if job.kind == CHUNK_KIND or job.chunks:
        return True
    if not settings.enabled or job.format != "mp4":
        return False
    fps = presets.quality(job.quality).fps
    return job.frames >= settings.min_chunks * settings.chunk_s * fps


def scene_options(job: Job, logo: Path | None) -> dict:
    """node.pipeline.prepare's options for `job`: the same as the daemon's render() call
    gives, so a chunk's scene is the render's."""
    return dict(transcript=job.transcript or None, template=job.template, character=job.character,
                quality=job.quality, format=job.format, title=job.title or None,
                watermark=job.tier in WATERMARKED_TIERS, expression=job.expression,
                captions=job.captions, second_character=job.second_character or None, logo=logo)


def _encoder(job: Job) -> tuple[str, dict[str, str]]:
    from node.pipeline import video_codec

    # Chunks are x264 on every node: they must join into one stream (node/chunks.py).
    return video_codec(job.format, job.quality, software=True)


class ChunkJobs:
    """Runs chunk jobs and chunked renders for a node daemon (node/daemon.py)."""

    def __init__(self, daemon) -> None:
        self.d = daemon
        self._prepared: tuple[str, object] | None = None  # (render id, Prepared): reused

    # entry point ---------------------------------------------------------------
    def run(self, job: Job, lease: Lease, hb: Heartbeat, work: Path) -> str:
        log_path = work / LOG_ARTIFACT
        with JobLog(log_path, job, self.d.config.node_id, lease.fence):
            try:
                if job.kind == CHUNK_KIND:
                    uploads = self._chunk(job, lease, hb, work)
                else:
                    uploads = self._render(job, lease, hb, work)
            except StaleLease:
                raise
            except Exception as exc:
                hb.stop()
                return self.d._give_up(job, lease, exc, log_path,
                                       forced=isinstance(exc, JobStopped) and not hb.lost)
        for path in (*uploads, log_path):
            self.d.transfer.upload(lease, path)
        hb.stop()
        names = [p.name for p in (*uploads, log_path)]
        outcome = retry(lambda: self.d.leases.complete(lease, names), f"completing {job.id}")
        log.info("%s %s", job.id, outcome)
        if job.kind != CHUNK_KIND and outcome == JobState.SUCCEEDED.value:
            try:
                self.d.transfer.delete_chunk_streams(lease)
            except Exception as exc:  # the render is done; the streams only take room
                log.warning("%s: chunk streams not deleted: %s", job.id, exc)
        return outcome

    def _stopper(self, *beats: Heartbeat):
        """Raises JobStopped once any of `beats` lost its lease or the node is forced."""
        def check() -> None:
            for beat in beats:
                if beat.lost:
                    raise JobStopped(beat.lost)
            if self.d._forced.is_set():
                raise JobStopped("node forced to stop")
        return check

    # a chunk, on any node ------------------------------------------------------
    def _chunk(self, job: Job, lease: Lease, hb: Heartbeat, work: Path) -> list[Path]:
        prep = self._prepare_chunk(job, lease, work)
        path = work / CHUNK_VIDEO
        stop = self._stopper(hb)

        def progress(frac: float) -> None:
            hb.progress = frac
            stop()

        self._draw(prep, job, path, progress)
        return [path]

    def _prepare_chunk(self, job: Job, lease: Lease, work: Path):
        from node.pipeline import prepare

        if self._prepared is not None and self._prepared[0] == job.parent:
            return self._prepared[1]
        self._prepared = None  # one scene kept at a time
        tl = self.d.transfer.fetch_related(lease, job.parent, FULL_TIMELINE, work / FULL_TIMELINE)
        timeline = Timeline.from_dict(json.loads(tl.read_text()))
        logo = (self.d.transfer.fetch_related(lease, job.parent, "input.logo", work / "input.logo")
                if job.logo else None)
        prep = prepare(None, timeline=timeline, **scene_options(job, logo))
        self._prepared = (job.parent, prep)
        return prep

    def _draw(self, prep, job: Job, path: Path, progress) -> int:
        from node.chunks import render_chunk

        codec, options = _encoder(job)
        t0 = time.perf_counter()
        frames = render_chunk(prep.scene, range(job.frame_start, job.frame_stop), path, codec, options,
                              progress=progress)
        seconds = time.perf_counter() - t0
        log.info("%s: frames %d..%d rendered in %.1f s (%.1f frames/s)", job.id, job.frame_start,
                 job.frame_stop, seconds, frames / max(seconds, 1e-9))
        node_key = keys.node(self.d.config.node_id)
        try:  # scaling advice and the console read these (node/daemon.py does the same)
            self.d.redis.hset(node_key, "fps", f"{frames / max(seconds, 1e-9):.1f}")
            self.d.redis.hincrby(node_key, keys.NODE_FRAMES_FIELD, frames)
        except redis.RedisError as exc:
            log.warning("could not record frames rendered: %s", exc)
        return frames

    # a render split into chunks, on the node that leased it ---------------------
    def _render(self, job: Job, lease: Lease, hb: Heartbeat, work: Path) -> list[Path]:
        from node.chunks import audio_frames, plan, stitch
        from node.pipeline import captions_path_for, prepare, write_captions, write_poster

        cfg = self.d.config.chunks
        stop = self._stopper(hb)
        audio = self.d.transfer.fetch_input(lease, work / "input.audio")
        logo = self.d.transfer.fetch_logo(lease, work / "input.logo") if job.logo else None
        timeline = None
        if job.chunks:  # split by a node that died: its chunks were drawn from this timeline
            path = self.d.transfer.fetch_related(lease, job.id, FULL_TIMELINE, work / FULL_TIMELINE)
            timeline = Timeline.from_dict(json.loads(path.read_text()))
        prep = prepare(audio, timeline=timeline, **scene_options(job, logo))
        stop()
        if not job.chunks:
            path = work / FULL_TIMELINE
            path.write_text(json.dumps(prep.timeline.to_dict()))
            self.d.transfer.upload(lease, path)
        fps = round(prep.fps)
        total = max(prep.scene.n_frames, audio_frames(audio, fps))
        ranges = plan(total, prep.fps, cfg.chunk_s or cfg.min_chunk_s, cfg.min_chunk_s)
        stop()
        try:
            ids = self.d.transfer.split(lease, ranges)
        except StaleLease:
            stop()  # canceled meanwhile: stop as canceled, not as a lost lease
            if self.d.leases.job(job.id).state == JobState.CANCEL_REQUESTED:
                raise JobStopped("canceled") from None
            raise
        log.info("%s: %d frames in %d chunks", job.id, total, len(ids))
        local = self._wait(job, lease, hb, ids, prep, work)

        streams = []
        for cid in ids:
            mine = local.get(cid)
            if mine is None:
                mine = self.d.transfer.fetch_related(lease, cid, CHUNK_VIDEO, work / f"{cid}.h264")
            streams.append(mine)
        stop()
        video = work / "video.mp4"
        t0 = time.perf_counter()
        frames = stitch(streams, audio, video, prep.width, prep.height, fps)
        expected = retry(lambda: self._chunk_states(ids), f"reading the chunks of {job.id}")
        if frames != sum(c["frames"] for c in expected.values()):  # a stream cut short: no gap
            raise RuntimeError(f"the chunks held {frames} frames, not "
                               f"{sum(c['frames'] for c in expected.values())}")
        log.info("%s: %d chunks stitched (%d frames) in %.2f s", job.id, len(streams), frames,
                 time.perf_counter() - t0)
        timeline_path = work / "timeline.json"
        timeline_path.write_text(prep.timeline.to_json_text())
        captions = write_captions(prep.shown, captions_path_for(video))
        poster = write_poster(prep.scene, work / "poster.png")
        return [video, timeline_path, poster, *([captions] if captions else [])]

    def _wait(self, job: Job, lease: Lease, hb: Heartbeat, ids: list[str], prep,
              work: Path) -> dict[str, Path]:
        """Render queued chunks here until none is left, wait for the rest; the streams
        this node drew (chunk id -> path)."""
        stop = self._stopper(hb)
        local: dict[str, Path] = {}
        while True:
            stop()
            chunks = retry(lambda: self._chunk_states(ids), f"reading the chunks of {job.id}")
            _advance(hb, chunks)
            for cid, c in chunks.items():
                if c["state"] == JobState.FAILED.value:
                    raise ChunkFailed(f"chunk {cid} failed: {c['error']}")
                if c["state"] == JobState.CANCELED.value:  # (a render retried while it was stopping)
                    raise ChunkFailed(f"chunk {cid} was canceled")
            if all(c["state"] == JobState.SUCCEEDED.value for c in chunks.values()):
                return local
            queued = [cid for cid, c in chunks.items() if c["state"] == JobState.QUEUED.value]
            claimed = None
            for cid in queued:
                claimed = retry(lambda: self.d.leases.lease_chunk(lease, cid), f"leasing {cid}")
                if claimed is not None:
                    break
            if claimed is None:
                self.d._forced.wait(WAIT_POLL_S)
                continue
            path = self._render_here(job, hb, claimed, ids, prep, work)
            if path is not None:
                local[claimed.job_id] = path

    def _render_here(self, job: Job, hb: Heartbeat, lease: Lease, ids: list[str], prep,
                     work: Path) -> Path | None:
        """Render a chunk this node leased while it holds the render: the render's scene,
        the chunk's own lease and heartbeat. Its stream's path once completed, else None.
        Raises JobStopped when the render must stop (lost, canceled, node forced)."""
        chunk = retry(lambda: self.d.leases.job(lease.job_id), "reading the chunk")
        chb = Heartbeat(self.d.leases, lease)
        chb.start()
        folder = work / "chunks" / chunk.id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / CHUNK_VIDEO
        stop_render, stop_chunk = self._stopper(hb), self._stopper(chb)
        next_read = [0.0]

        def progress(frac: float) -> None:
            chb.progress = frac
            if time.monotonic() >= next_read[0]:  # the render's progress, from all its chunks
                next_read[0] = time.monotonic() + PROGRESS_READ_S
                try:
                    _advance(hb, self._chunk_states(ids))
                except redis.RedisError:
                    pass
            stop_render()
            stop_chunk()

        try:
            self._draw(prep, chunk, path, progress)
            self.d.transfer.upload(lease, path)
            chb.stop()
            outcome = retry(lambda: self.d.leases.complete(lease, [CHUNK_VIDEO]), f"completing {chunk.id}")
            log.info("%s %s (rendered by its render's node)", chunk.id, outcome)
            return path if outcome == JobState.SUCCEEDED.value else None
        except StaleLease as exc:
            log.warning("%s: lease lost: %s", chunk.id, exc)
            return None
        except Exception as exc:
            chb.stop()
            # Stopped for the render's sake (or the node's): the chunk goes back untouched.
            ours = isinstance(exc, JobStopped) and not chb.lost
            try:
                if ours:
                    outcome = retry(lambda: self.d.leases.release(lease), f"releasing {chunk.id}")
                else:
                    err = f"{type(exc).__name__}: {exc}"
                    log.error("%s failed: %s", chunk.id, err)
                    outcome = retry(lambda: self.d.leases.fail(lease, err), f"failing {chunk.id}")
                log.info("%s is now %s", chunk.id, outcome)
            except StaleLease:
                pass
            if ours:
                raise
            shutil.rmtree(folder, ignore_errors=True)
            return None
        finally:
            chb.stop()

    def _chunk_states(self, ids: list[str]) -> dict[str, dict]:
        pipe = self.d.redis.pipeline(transaction=False)
        for cid in ids:
            pipe.hmget(keys.job(cid), "state", "progress", "frames", "error")
        out = {}
        for cid, (state, prog, frames, err) in zip(ids, pipe.execute()):
            out[cid] = {"state": (state or b"").decode(), "progress": float(prog or 0),
                        "frames": int(float(frames or 0)), "error": (err or b"").decode()}
        return out


def _advance(hb: Heartbeat, chunks: dict[str, dict]) -> None:
    """The render's progress from its chunks'; never backwards (a chunk leased again
    starts over)."""
    hb.progress = max(hb.progress or 0.0, RENDER_SHARE * _done_fraction(chunks))


def _done_fraction(chunks: dict[str, dict]) -> float:
    """Frames drawn over all frames, from each chunk's progress."""
    total = sum(c["frames"] for c in chunks.values())
    done = sum(c["frames"] * (1.0 if c["state"] == JobState.SUCCEEDED.value else c["progress"])
               for c in chunks.values())
    return done / total if total else 0.0
