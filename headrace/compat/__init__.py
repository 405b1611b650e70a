"""Bringing Airflow DAG files over.

* :mod:`~headrace.compat.airflow_names`: the one table of Airflow import
  paths and the headrace names that implement them;
* :mod:`~headrace.compat.airflow_finder`: ``core.airflow_imports``, DAG files
  run with their ``airflow.*`` imports unchanged;
* :mod:`~headrace.compat.migrate`: ``headrace migrate airflow``, the files are
  rewritten to headrace's imports and Airflow 3's names (LibCST);
* :mod:`~headrace.compat.dates`, :mod:`~headrace.compat.timezone`: the small
  ``airflow.utils`` helpers DAG files use.

The authoring API never imports this package (an import-linter contract).
"""
