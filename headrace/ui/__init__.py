"""The web UI: server-rendered pages (``views``), compact JSON for the grid and graph (``data``), static files.

State colours live here (``static/ui.css``), never in ``headrace.states``.
"""
