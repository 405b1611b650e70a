"""The REST API and the server that also serves the web UI and ``/metrics`` (FastAPI)."""
