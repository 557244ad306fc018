"""Torch thread count versus speed and output: SmolLM2 generation and a LoRA training step, 1 vs 2 threads.

Each thread count runs in its own fresh process (``EHRQA_THREADS`` = ``OMP_NUM_THREADS`` = N, applied
by :func:`ehrqa.threads.set_torch_threads`), so no thread pool survives from one measurement to
the next. Per thread count it prints:

* short prompts: greedy generation with the shipped SmolLM2-135M-Instruct (``ehrqa.llm.hf.HFChat``)
  of a few short questions written for this benchmark, in generated tokens per second;
* ST3 prompts: greedy ``st3-answer@1`` answers for the first bundled sample cases (the real, long
  prompts), in tokens per second, and whether the answer texts are identical across thread counts;
* a training step: forward + backward + AdamW on a LoRA (r 4, all linear layers) over the tiny
  random Qwen3 the tests use (``tests/tiny_models.py``), batch 2 x 512 tokens, median seconds.

Run it with nothing else busy if you want the machine's numbers, and note the load (``uptime``)
with the result: on a shared machine the difference between thread counts is mostly contention.

    .venv/bin/python benchmarks/bench_threads.py [--threads 1 2] [--st3-cases 4] [--no-train]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHORT_PROMPTS = [
    "What does a blood pressure of 150 over 95 mean?",
    "Why would a doctor order a chest X-ray after a fall?",
    "What is the difference between a CT scan and an MRI?",
    "Why are blood thinners stopped before surgery?",
    "What does it mean when a wound is red and warm?",
    "How long does it take to recover from a broken wrist?",
    "Why do patients get fluids through a drip in hospital?",
    "What is a normal heart rate for an adult at rest?",
]


def child(args: argparse.Namespace) -> dict:
    """Every measurement for one thread count (this process's ``EHRQA_THREADS``)."""
    from ehrqa.threads import set_torch_threads

    threads = set_torch_threads()
    import torch

    from ehrqa.data.archehr import read_dataset
    from ehrqa.llm.backend import ChatRequest, GenerationConfig
    from ehrqa.llm.hf import HFChat
    from ehrqa.llm.prompt import case_slots, load_prompt

    result: dict = {"threads": threads, "torch_threads": torch.get_num_threads()}
    started = time.perf_counter()
    chat = HFChat(None)  # the shipped SmolLM2, default batch size
    result["load_s"] = time.perf_counter() - started
    chat.chat([[{"role": "user", "content": "Hello"}]], GenerationConfig(max_new_tokens=4))  # warm-up

    def timed(conversations: list, max_new_tokens: int) -> tuple[list[str], float, int]:
        config = GenerationConfig(max_new_tokens=max_new_tokens)
        requests = [ChatRequest(tuple(c), config) for c in conversations]
        started = time.perf_counter()
        replies = chat.complete(requests)
        seconds = time.perf_counter() - started
        return [r.text for r in replies], seconds, sum(r.completion_tokens or 0 for r in replies)

    short = [[{"role": "user", "content": p}] for p in SHORT_PROMPTS[: args.prompts]]
    texts, seconds, tokens = timed(short, args.max_new_tokens)
    result["short"] = {"seconds": seconds, "tokens": tokens, "texts": texts}

    prompt = load_prompt("st3-answer@1")
    cases = [c.input_for(3) for c in read_dataset()][: args.st3_cases]
    texts, seconds, tokens = timed([prompt.render(case_slots(c)) for c in cases], args.st3_max_new_tokens)
    result["st3"] = {"seconds": seconds, "tokens": tokens, "texts": texts, "cases": [c.id for c in cases]}
    chat.close()

    if args.train:
        result["train_step_s"] = train_steps(args.train_steps)
    return result


def train_steps(steps: int) -> list[float]:
    """Seconds per LoRA training step on the tiny Qwen3 (after one warm-up step)."""
    import tempfile

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from tiny_models import build_tiny_qwen3

    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_qwen3(os.path.join(tmp, "tiny-qwen3"))
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    batch = torch.randint(0, model.config.vocab_size, (2, 512), generator=generator)
    times = []
    for step in range(steps + 1):
        started = time.perf_counter()
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step:  # the first step is a warm-up
            times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--prompts", type=int, default=8, help="short prompts (default: 8)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="for the short prompts (default: 32)")
    parser.add_argument("--st3-cases", type=int, default=4, help="sample cases for the ST3 check (default: 4)")
    parser.add_argument("--st3-max-new-tokens", type=int, default=64, help="(default: 64)")
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--no-train", dest="train", action="store_false", help="skip the training step")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args)))
        return

    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")
    results = []
    for n in args.threads:
        env = {**os.environ, "EHRQA_THREADS": str(n), "OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}
        command = [sys.executable, __file__, "--child", *sys.argv[1:]]
        proc = subprocess.run(command, capture_output=True, text=True, env=env)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            sys.exit(f"threads {n}: the measurement failed:\n{proc.stderr[-2000:]}")
        results.append(json.loads(lines[-1].removeprefix("RESULT ")))
        print(f"load after {n} thread(s): {os.getloadavg()[0]:.2f}")

    print(f"\n{'threads':>7} {'load s':>7} {'short tok/s':>12} {'ST3 tok/s':>10} {'train step s':>13}")
    for r in results:
        short = r["short"]["tokens"] / r["short"]["seconds"]
        st3 = r["st3"]["tokens"] / r["st3"]["seconds"]
        steps = sorted(r.get("train_step_s") or [])
        train = f"{steps[len(steps) // 2]:.3f}" if steps else "-"
        print(f"{r['threads']:>7} {r['load_s']:>7.1f} {short:>12.2f} {st3:>10.2f} {train:>13}")
    first = results[0]
    for r in results[1:]:
        for part in ("short", "st3"):
            same = [a == b for a, b in zip(first[part]["texts"], r[part]["texts"], strict=True)]
            print(
                f"{part}: greedy texts with {r['threads']} vs {first['threads']} thread(s): "
                f"{sum(same)}/{len(same)} identical"
                + ("" if all(same) else f" (differ: items {[i for i, s in enumerate(same) if not s]})")
            )


if __name__ == "__main__":
    main()
