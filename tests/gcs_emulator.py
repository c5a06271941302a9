"""A Google Cloud Storage emulator on loopback, for the cloud-storage tests.

The emulator is PyPI's `gcp-storage-emulator`, run in its own process (`python -m
tests.gcs_emulator --port=P --bucket=B`) so that the runs under test, which are subprocesses too,
reach it over HTTP exactly as they would reach GCS. Clients are pointed at it with the standard
variables only: `STORAGE_EMULATOR_HOST` (gcsfs, google-cloud-storage) and
`TENSORSTORE_GCS_HTTP_URL` (tensorstore, which orbax writes arrays with).

One gap of the emulator is filled here, in the emulator's process: real GCS answers a media
download with the object's generation in an `x-goog-generation` header, and tensorstore reads
the generation from that header (it is how OCDBT, orbax's checkpoint format, checks that the
manifest it rewrites is the one it read). The emulator omits the header, so the second write of
an OCDBT manifest fails with "Malformed StorageGeneration"; we add the header from the object's
own metadata. Nothing on the client side is changed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Iterator

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _with_generation_header(download):
    """Wraps the emulator's media-download handler to send `x-goog-generation`, as GCS does."""

    def handler(request, response, storage, *args, **kwargs):
        download(request, response, storage, *args, **kwargs)
        try:
            obj = storage.get_file_obj(request.params["bucket_name"],
                                       request.params["object_id"])
        except Exception:  # pylint: disable=broad-except  (a 404 is already in the response)
            return
        response["x-goog-generation"] = str(obj["generation"])
        response["x-goog-metageneration"] = str(obj.get("metageneration", "1"))

    return handler


def serve(port: int, bucket: str) -> None:
    """Runs the emulator (in memory, with `bucket` created) until terminated."""
    from gcp_storage_emulator import server  # pylint: disable=import-outside-toplevel
    from gcp_storage_emulator.handlers import objects  # pylint: disable=import-outside-toplevel

    original = objects.download
    patched = _with_generation_header(original)
    objects.download = patched  # objects.get calls it for `?alt=media`
    for _, methods in server.HANDLERS:
        for method, function in list(methods.items()):
            if function is original:
                methods[method] = patched
    parent = os.getppid()

    def exit_with_parent():  # a killed test run must not leave the emulator behind
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)  # pylint: disable=protected-access

    threading.Thread(target=exit_with_parent, daemon=True).start()
    server.create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket).run()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def client_environment(url: str) -> dict[str, str]:
    """The standard variables that point gcsfs, google-cloud-storage and tensorstore at `url`."""
    return {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url}


@contextlib.contextmanager
def running(bucket: str, log_path: str) -> Iterator[str]:
    """Starts the emulator on a free loopback port with `bucket`; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.gcs_emulator", f"--port={port}", f"--bucket={bucket}"],
            cwd=_REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": _REPO_ROOT})
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"the GCS emulator exited: {open(log_path).read()}")
            try:
                with urllib.request.urlopen(f"{url}/storage/v1/b/{bucket}", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"the GCS emulator did not answer on {url}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bucket", required=True)
    options = parser.parse_args()
    serve(options.port, options.bucket)
