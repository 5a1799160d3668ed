"""Lip sync: narration audio (and an optional transcript) to Rhubarb mouth cues."""

from node.lipsync.engine import (MAX_AUDIO_S, MAX_TRANSCRIPT_WORDS, RECOGNIZERS, lipsync,
                                 lipsync_file)

__all__ = ["MAX_AUDIO_S", "MAX_TRANSCRIPT_WORDS", "RECOGNIZERS", "lipsync", "lipsync_file"]
