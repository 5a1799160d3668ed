"""URL wiring only."""

from __future__ import annotations

from aiohttp import web

from scheduler import admin, health, metrics, nodeapi, renders, scaling


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/health", health.health)
    app.router.add_get("/metrics", metrics.metrics)
    app.router.add_get("/v1/admin/scaling", scaling.scaling)
    app.router.add_post("/v1/renders", renders.create_render)
    app.router.add_get("/v1/renders/{job_id}", renders.get_render)
    app.router.add_get("/v1/renders/{job_id}/download", renders.download_render)
    app.router.add_post("/v1/renders/{job_id}/cancel", renders.cancel_render)
    app.router.add_get("/v1/usage", renders.usage)
    app.router.add_get("/v1/admin/overview", admin.overview)
    app.router.add_post("/v1/admin/jobs/{job_id}/cancel", admin.cancel_job)
    app.router.add_get("/v1/admin/jobs/{job_id}/log", admin.job_log)
    app.router.add_post("/v1/admin/jobs/{job_id}/priority", admin.set_priority)
    app.router.add_post("/v1/admin/tiers/{tier}/{action:pause|resume}", admin.pause_tier)
    app.router.add_get("/console", admin.console)
    app.router.add_get("/console/{name}", admin.console)
    app.router.add_get("/v1/node/jobs/{job_id}/input", nodeapi.get_input)
    app.router.add_put("/v1/node/jobs/{job_id}/artifacts/{name}", nodeapi.put_artifact)
