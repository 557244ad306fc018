"""``ehrqa generate``: ST3 answers for a dataset, written as an official submission."""

from __future__ import annotations

import argparse
from pathlib import Path

from ehrqa.commands._common import add_backend_arguments, add_prediction_arguments, backend_from_args, load_inputs

HELP = "generate ST3 answers with a local model (+ LoRA adapter) or an OpenAI-compatible server"
DESCRIPTION = (
    "Answer every case (patient narrative + clinician question + numbered note sentences) in at most "
    "75 words and write submission.json (+ .zip). Finished cases are appended to a run directory, so "
    "running the same command again after an interruption continues where it stopped. Without --model "
    "the shipped SmolLM2-135M-Instruct is used."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_prediction_arguments(parser)
    parser.add_argument("--run-dir", metavar="DIR", help="per-case results for resuming (default: OUT's folder/run)")
    add_backend_arguments(parser, default_model="the adapter's base, else the shipped SmolLM2")
    g = parser.add_argument_group("decoding")
    g.add_argument("--max-new-tokens", type=int, default=112, help="(default: 112, ~75 words)")
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from ehrqa.data.submission import build_submission, write_submission
    from ehrqa.llm.backend import GenerationConfig
    from ehrqa.tasks.generate import predict

    cases = load_inputs(args)
    backend = backend_from_args(args)
    out = Path(args.out)
    run_dir = Path(args.run_dir) if args.run_dir else out.parent / "run"
    generation = GenerationConfig(args.max_new_tokens, args.temperature, args.top_p, args.seed)
    # For a server, a "batch" is how many requests are saved together; keep several in flight.
    batch = args.batch_size if args.backend == "hf" else max(args.concurrency * 2, 1)
    try:
        answers = predict(cases, backend=backend, generation=generation, run_dir=run_dir, batch_size=batch)
    finally:
        backend.close()
    path = write_submission(build_submission(3, answers, cases), out)
    print(f"wrote {path} ({len(answers)} answers; per-case results in {run_dir})")
    return 0
