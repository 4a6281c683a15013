"""A throwaway Spark Connect server for the tests: local[2] Spark from the pyspark package, with
an embedded Hive metastore and a warehouse in a temporary folder, on a free loopback port,
stopped when the tests end. Each test gets it empty (`reset`)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.pg_server import free_port


def spark_home() -> Path | None:
    try:
        import pyspark
    except ImportError:
        return None
    home = Path(pyspark.__file__).parent
    return home if (home / "bin" / "spark-submit").exists() and shutil.which("java") else None


class SparkServer:
    def __init__(self) -> None:
        home = spark_home()
        if home is None:
            raise RuntimeError("pyspark (with its jars) or java is missing")
        self.home = home
        self.folder = Path(tempfile.mkdtemp(prefix="sqlops-spark-", dir="/tmp"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"sc://127.0.0.1:{self.port}"

    def start(self) -> str:
        settings = {
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(self.port),
            "spark.sql.warehouse.dir": str(self.folder / "warehouse"),
            "spark.sql.catalogImplementation": "hive",
            "spark.hadoop.javax.jdo.option.ConnectionURL": (
                f"jdbc:derby:;databaseName={self.folder / 'metastore_db'};create=true"
            ),
            "spark.driver.extraJavaOptions": "-Dderby.system.durability=test "
            f"-Dderby.stream.error.file={self.folder / 'derby.log'}",
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
        }
        command = [
            str(self.home / "bin" / "spark-submit"),
            "--class",
            "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--master",
            "local[2]",
        ]
        for key, value in settings.items():
            command += ["--conf", f"{key}={value}"]
        log = (self.folder / "server.log").open("wb")
        env = {**os.environ, "SPARK_HOME": str(self.home), "SPARK_LOCAL_IP": "127.0.0.1"}
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder, env=env
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    "the Spark Connect server stopped: "
                    + (self.folder / "server.log").read_text(errors="replace")[-2000:]
                )
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self.url
            time.sleep(0.5)
        raise RuntimeError("the Spark Connect server did not start within 180 s")

    def client(self) -> Any:
        return client(self.url)

    def reset(self) -> None:
        """Drop every database but `default`: the next test finds the catalog empty."""
        spark = self.client()
        for row in spark.sql("SHOW DATABASES").collect():
            if row[0] != "default":
                spark.sql(f"DROP DATABASE `{row[0]}` CASCADE").collect()

    def stop(self) -> None:
        try:
            if self.url in _clients:
                _clients.pop(self.url).stop()
            if self.process is not None:
                self.process.terminate()
                try:
                    self.process.wait(30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


_clients: dict[str, Any] = {}


def client(url: str) -> Any:
    """A Spark Connect session of the test process, one per server."""
    if url not in _clients:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pyspark.sql import SparkSession

            _clients[url] = SparkSession.builder.remote(url).getOrCreate()
    return _clients[url]
