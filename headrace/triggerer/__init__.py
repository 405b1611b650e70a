"""The triggerer: one asyncio process running the triggers of deferred task instances (``headrace triggerer``).

See :mod:`headrace.triggerer.runner`.
"""
