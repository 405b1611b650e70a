"""A real S3-compatible server for the tests: moto in server mode on loopback, reached over HTTP.

:func:`start_s3_server` starts one (a thread of the test process serving HTTP on 127.0.0.1, a free port);
supervisors, fork servers and the API reach it through a connection whose extra names its ``endpoint_url``,
exactly as a deployment reaches MinIO or Ceph.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from moto.server import ThreadedMotoServer

from headrace.authoring.secrets import Connection
from headrace.config import Settings
from headrace.crypto import Encryptor
from headrace.db.engine import Database
from headrace.secrets_store import set_connection

CONN_ID = "s3_test"
KEY = "testing"
SECRET = "testing-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class S3Server:
    """A moto server on ``127.0.0.1:port``; :meth:`stop` and :meth:`start` again keep its buckets."""

    port: int
    server: ThreadedMotoServer | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            if self.server._server is not None:  # shutdown() leaves the socket listening: close it (refused)
                self.server._server.server_close()
            self.server = None

    def client(self) -> Any:
        """A boto3 S3 client of this server (for the tests' own checks)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        )

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def read(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None if there is none."""
        client = self.client()
        try:
            data: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None
        return data

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


def start_s3_server() -> S3Server:
    server = S3Server(free_port())
    server.start()
    return server


def add_s3_connection(settings: Settings, db: Database, server: S3Server, conn_id: str = CONN_ID) -> str:
    """Store the connection that reaches ``server`` (login/password and the extra's endpoint_url)."""
    with db.session() as session:
        set_connection(
            session,
            Encryptor.from_settings(settings),
            Connection(
                conn_id=conn_id,
                conn_type="aws",
                login=KEY,
                password=SECRET,
                extra={"endpoint_url": server.endpoint_url, "region_name": "us-east-1"},
            ),
        )
    return conn_id
