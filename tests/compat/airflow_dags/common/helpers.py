"""A helper module beside the DAG files: not a DAG file itself (it names no orchestrator)."""


def greeting(name: str) -> str:
    return f"hello {name}"
