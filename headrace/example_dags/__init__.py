"""Example DAGs bundled with headrace (loaded by ``headrace standalone``)."""
