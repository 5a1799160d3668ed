"""A video's audio track, encoded on its own thread a bounded distance ahead of the video.

AAC costs a quarter of a preview render's encoding (0.16 s of CPU for 30 s of
speech): on the video's thread it is time the video encoder waits. PyAV's
encoders release the GIL, so this thread encodes in parallel; the video's thread
keeps the container to itself and muxes the packets that are ready when its
frames reach them, so the file stays interleaved. The queue holds at most
`AHEAD_S` seconds of packets: memory does not grow with the length.
"""

from __future__ import annotations

import queue
import threading
from fractions import Fraction

import av
import numpy as np

from node.render.audio import AudioSource

CHUNK_S = 0.1  # samples per encoded piece: a tenth of a second
AHEAD_S = 5.0


class AudioTrack:
    """Reads `source` to its end and encodes it into `stream`, from a worker thread."""

    def __init__(self, stream: av.AudioStream, source: AudioSource, rate: int) -> None:
        self._stream, self._source, self._rate = stream, source, rate
        self._chunk = max(1, int(rate * CHUNK_S))
        self._queue: queue.Queue[tuple[int, list[av.Packet]] | None] = queue.Queue(
            maxsize=max(1, int(AHEAD_S / CHUNK_S)))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.samples = 0  # read from the source and encoded
        self.ended = False  # the source is exhausted (set on the worker; read after join)
        self._thread = threading.Thread(target=self._run, name="toonz-audio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._source.read(self._chunk)
                if len(chunk):
                    start = self.samples
                    packets = self.encode(chunk, start)
                    self.samples += len(chunk)
                    self._put((start, packets))
                if len(chunk) < self._chunk:
                    self.ended = True
                    break
        except BaseException as exc:  # raised again on the video's thread
            self._error = exc
        finally:
            self._put(None)

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def encode(self, samples: np.ndarray, start: int) -> list[av.Packet]:
        """Encode mono float32 `samples` starting at sample `start` (pts in 1/rate)."""
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
        frame.sample_rate = self._rate
        frame.pts = start
        frame.time_base = Fraction(1, self._rate)
        return self._stream.encode(frame)

    def ready(self, until: int) -> list[av.Packet]:
        """Packets of the audio before sample `until` encoded so far, without waiting."""
        out: list[av.Packet] = []
        while True:  # this thread is the only consumer: what it peeks at, it gets
            with self._queue.mutex:
                head = self._queue.queue[0] if self._queue.queue else None
            if head is None or head[0] >= until:
                break
            out.extend(self._queue.get_nowait()[1])
        self._raise()
        return out

    def drain(self) -> list[av.Packet]:
        """Wait for the worker to reach the source's end; every packet not yet taken."""
        out: list[av.Packet] = []
        while (item := self._queue.get()) is not None:
            out.extend(item[1])
        self._thread.join()
        self._raise()
        return out

    def stop(self) -> None:
        """Stop the worker without draining (after an error elsewhere)."""
        self._stop.set()
        self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
