"""``ehrqa generate``: ST3 answers for a dataset, written as an official submission."""

from __future__ import annotations

import argparse
from pathlib import Path

from ehrqa.commands._common import add_data_arguments, load_cases, parse_case_ids

HELP = "generate ST3 answers with a local model (+ LoRA adapter) or an OpenAI-compatible server"
DESCRIPTION = (
    "Answer every case (patient narrative + clinician question + numbered note sentences) in at most "
    "75 words and write submission.json (+ .zip). Finished cases are appended to a run directory, so "
    "running the same command again after an interruption continues where it stopped. Without --model "
    "the shipped SmolLM2-135M-Instruct is used."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--out", required=True, metavar="FILE", help="where to write submission.json")
    parser.add_argument("--cases", nargs="+", metavar="IDS", help="only these case ids (e.g. 1-3 5)")
    parser.add_argument("--run-dir", metavar="DIR", help="per-case results for resuming (default: OUT's folder/run)")
    m = parser.add_argument_group("model")
    m.add_argument("--backend", choices=["hf", "openai"], default="hf", help="local transformers or an HTTP server")
    m.add_argument("--model", metavar="ID_OR_DIR",
                   help="hf: model id or directory (default: the adapter's base, else SmolLM2); "
                        "openai: the model name the server serves")  # fmt: skip
    m.add_argument("--adapter", metavar="DIR", help="hf: LoRA adapter directory (from ehrqa train generator)")
    m.add_argument("--load-in-4bit", action="store_true", help="hf: load the base model in 4-bit NF4")
    m.add_argument("--batch-size", type=int, default=4, help="hf: prompts per generate() call (default: 4)")
    m.add_argument("--base-url", metavar="URL", help="openai: server URL ending in /v1 (e.g. http://127.0.0.1:8000/v1)")
    m.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="NAME",
                   help="openai: environment variable holding the API key (default: OPENAI_API_KEY)")  # fmt: skip
    m.add_argument("--concurrency", type=int, default=4, help="openai: requests in flight at once (default: 4)")
    m.add_argument("--timeout", type=float, default=120.0, help="openai: seconds per request (default: 120)")
    m.add_argument("--retries", type=int, default=3, help="openai: retries per request (default: 3)")
    g = parser.add_argument_group("decoding")
    g.add_argument("--max-new-tokens", type=int, default=112, help="(default: 112, ~75 words)")
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from ehrqa.data.submission import build_submission, write_submission
    from ehrqa.llm.backend import GenerationConfig, make_backend
    from ehrqa.tasks.generate import predict

    cases = [c.without_gold() for c in load_cases(args)]
    wanted = parse_case_ids(args.cases)
    if wanted:
        cases = [c for c in cases if c.id in set(wanted)]
    backend = make_backend(
        args.backend, model=args.model, adapter=args.adapter, load_in_4bit=args.load_in_4bit,
        batch_size=args.batch_size, base_url=args.base_url, api_key_env=args.api_key_env,
        timeout=args.timeout, retries=args.retries, concurrency=args.concurrency,
    )  # fmt: skip
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
