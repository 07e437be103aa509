"""A throwaway S3 API for the tests: moto's server on 127.0.0.1, an ephemeral port, started
the way the tests start their throwaway PostgreSQL. Buckets are made with Object Lock on."""

from __future__ import annotations

import logging
import os
import pickle
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer

# moto takes any key pair; these stand for the operator's
ACCESS_KEY = "eoy-test-access"
SECRET_KEY = "eoy-test-secret"
REGION = "us-east-1"


class ThrowawayS3:
    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def start(self) -> ThrowawayS3:
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self.server.stop()

    def env(self) -> dict[str, str]:
        """The standard AWS variables a runner reads to reach this store."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
        }

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def make_bucket(self, object_lock: bool = True) -> str:
        name = f"eoy-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        return name

    # The server runs in this process: a bucket's whole state (its objects, their versions,
    # locks and holds) can be kept and put back, which no S3 API allows once objects are
    # locked. A scenario made once in a bucket is so given afresh to each test.
    def saved_bucket(self, name: str) -> bytes:
        """The bucket as it is now, every object and version with its lock and hold."""
        return pickle.dumps(s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[name])

    def restore_bucket(self, name: str, saved: bytes) -> None:
        """The bucket back as saved_bucket kept it, whatever a test did to it since."""
        s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[name] = pickle.loads(saved)


@contextmanager
def aws_env(values: dict[str, str]) -> Iterator[None]:
    """The AWS variables set for this process (and the commands it starts), then put back."""
    names = [k for k in os.environ if k.startswith("AWS_")] + list(values)
    saved = {k: os.environ.get(k) for k in names}
    for name in names:
        os.environ.pop(name, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def checking_credentials() -> Iterator[str]:
    """moto's server in a process of its own that checks every request's credentials (it
    knows none, so every key is refused); its endpoint."""
    port = free_port()
    env = {"INITIAL_NO_AUTH_ACTION_COUNT": "0", "PATH": os.environ.get("PATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
