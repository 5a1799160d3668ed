"""URL wiring only."""

from __future__ import annotations

from aiohttp import web

from scheduler import admin, health, metrics, nodeapi, renders, scaling
from scheduler import billing, catalog, listing, progress
from scheduler import creation, ratelimit, tenantsapi
from scheduler import webhooks
from scheduler import chunkapi
from scheduler import audit, console_stream, throughput
from scheduler import docs


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/health", health.health)
    app.router.add_get("/ready", health.ready)
    app.router.add_get("/metrics", metrics.metrics)
    app.router.add_get("/v1/admin/scaling", scaling.scaling)
    app.router.add_post("/v1/renders", creation.create_render)
    app.router.add_post("/v1/renders/batch", creation.create_batch)
    app.router.add_get("/v1/renders/{job_id}", renders.get_render)
    app.router.add_get("/v1/renders/{job_id}/download", renders.download_render)
    app.router.add_post("/v1/renders/{job_id}/cancel", renders.cancel_render)
    app.router.add_get("/v1/usage", billing.usage)
    app.router.add_get("/v1/renders", listing.list_renders)
    app.router.add_get("/v1/renders/{job_id}/events", progress.render_events)
    app.router.add_get("/v1/invoices", billing.list_invoices)
    app.router.add_get("/v1/invoices/{period}.csv", billing.invoice_csv)
    app.router.add_get("/v1/pricing", billing.pricing)
    app.router.add_get("/v1/templates", catalog.templates)
    app.router.add_get("/v1/templates/{name}/preview.png", catalog.template_preview)
    app.router.add_get("/v1/characters", catalog.characters)
    app.router.add_get("/v1/characters/{name}/preview.png", catalog.character_preview)
    app.router.add_post("/v1/webhooks", webhooks.create_webhook)
    app.router.add_get("/v1/webhooks", webhooks.list_webhooks)
    app.router.add_get("/v1/webhooks/secret", webhooks.hook_secret)
    app.router.add_delete("/v1/webhooks/{webhook_id}", webhooks.delete_webhook)
    app.router.add_post("/v1/webhooks/{webhook_id}/test", webhooks.ping_webhook)
    app.router.add_get("/v1/webhooks/{webhook_id}/deliveries", webhooks.list_deliveries)
    app.router.add_get("/v1/admin/overview", admin.overview)
    app.router.add_post("/v1/admin/jobs/{job_id}/cancel", admin.cancel_job)
    app.router.add_get("/v1/admin/jobs/{job_id}/log", admin.job_log)
    app.router.add_post("/v1/admin/jobs/{job_id}/priority", admin.set_priority)
    app.router.add_post("/v1/admin/tiers/{tier}/{action:pause|resume}", admin.pause_tier)
    app.router.add_post("/v1/admin/jobs/{job_id}/retry", admin.retry_job)
    app.router.add_post("/v1/admin/nodes/{node_id}/{action:drain|undrain}", admin.drain_node)
    app.router.add_get("/v1/admin/audit", audit.audit_log)
    app.router.add_get("/v1/admin/throughput", throughput.throughput)
    app.router.add_post("/v1/admin/session", console_stream.create_session)
    app.router.add_get("/v1/admin/stream", console_stream.stream)
    console_stream.setup(app)  # the streams' shared state; they end when the app shuts down
    app.router.add_post("/v1/admin/tenants", tenantsapi.create_tenant)
    app.router.add_get("/v1/admin/tenants", tenantsapi.list_tenants)
    app.router.add_route("PATCH", "/v1/admin/tenants/{tenant_id}/tier", tenantsapi.set_tier)
    app.router.add_post("/v1/admin/tenants/{tenant_id}/tier", tenantsapi.set_tier)
    app.router.add_post("/v1/admin/tenants/{tenant_id}/keys", tenantsapi.create_key)
    app.router.add_get("/v1/admin/tenants/{tenant_id}/keys", tenantsapi.list_keys)
    app.router.add_delete("/v1/admin/keys/{key_id}", tenantsapi.revoke_key)
    app.router.add_get("/v1/admin/tiers", tenantsapi.tiers)
    app.router.add_get("/v1/admin/stats", tenantsapi.stats)
    app.router.add_get("/console", admin.console)
    app.router.add_get("/console/{name}", admin.console)
    app.router.add_get("/openapi.json", docs.openapi)
    app.router.add_get("/docs", docs.page)
    app.router.add_get("/docs/{name}", docs.page)
    app.router.add_get("/v1/node/jobs/{job_id}/input", nodeapi.get_input)
    app.router.add_get("/v1/node/jobs/{job_id}/logo", nodeapi.get_logo)
    app.router.add_put("/v1/node/jobs/{job_id}/artifacts/{name}", nodeapi.put_artifact)
    app.router.add_post("/v1/node/jobs/{job_id}/chunks", chunkapi.split_render)
    app.router.add_delete("/v1/node/jobs/{job_id}/chunks", chunkapi.delete_streams)
    app.router.add_get("/v1/node/jobs/{job_id}/related/{other_id}/{name}", chunkapi.get_related)
    ratelimit.setup(app)
