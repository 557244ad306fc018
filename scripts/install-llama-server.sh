#!/usr/bin/env bash
# Install llama.cpp's OpenAI-compatible server (llama-cpp-python with its server extra, pinned in
# requirements-llama.txt) into the virtualenv whose python is $1 (default .venv/bin/python); the tests
# that talk to a real server start it (tests/llama_server.py).
#
# Idempotent and quick when already installed (one import check). The first time, pip builds
# llama-cpp-python from source with the machine's gcc and cmake (3-4 minutes on 2 cores) and caches
# the wheel, so later virtualenvs install it in seconds. The build is portable (AVX2, no AVX-512 or
# AMX kernels): the default native build crashed on these CPUs with a general protection fault in
# libggml-cpu on the first completion. pip's wheel cache does not key on CMAKE_ARGS: a wheel cached
# from another build of the same version would be reused (pip cache remove llama_cpp_python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}

if "$PY" -c "import llama_cpp, llama_cpp.server.app" >/dev/null 2>&1; then
    exit 0
fi
echo "install-llama-server: installing llama-cpp-python (built from source the first time: a few minutes)" >&2
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF"
"$PY" -m pip install -q --disable-pip-version-check -r requirements-llama.txt 2> >(grep -v "is ignored: it is neither" >&2)
"$PY" -c "import llama_cpp, llama_cpp.server.app"
