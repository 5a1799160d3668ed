"""Helpers shared by test_openapi and test_openapi_drift."""

from __future__ import annotations


METHODS = ("get", "post", "put", "patch", "delete")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
