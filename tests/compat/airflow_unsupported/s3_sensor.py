"""Airflow constructs headrace does not implement yet: a provider, asset Metadata, an SLA (the sensor is supported)."""

from datetime import datetime, timedelta

from airflow.providers.amazon.aws.operators.s3 import S3CreateObjectOperator
from airflow.sdk import DAG, Metadata
from airflow.sensors.external_task import ExternalTaskSensor

with DAG("compat_unsupported", schedule=None, start_date=datetime(2024, 1, 1)):
    wait = ExternalTaskSensor(task_id="wait", external_dag_id="other", sla=timedelta(hours=1))
    put = S3CreateObjectOperator(task_id="put", s3_bucket="b", s3_key="k", data="{{ prev_ds }}")
    wait >> put
