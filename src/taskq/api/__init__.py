"""The HTTP API (FastAPI): routers per resource, assembled in ``app.create_app``."""
