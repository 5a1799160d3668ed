"""Toonz Farm: the shared core, the client SDK and the command line."""
