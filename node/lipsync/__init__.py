"""Lip sync: narration audio (and an optional transcript) to Rhubarb mouth cues."""

from node.lipsync.engine import lipsync, lipsync_file

__all__ = ["lipsync", "lipsync_file"]
