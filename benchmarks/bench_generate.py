"""Answer generation speed with the shipped SmolLM2-135M-Instruct on CPU.

Prints load time, generated tokens per second and seconds per case for greedy decoding of the
bundled sample cases (ST3 prompts: narrative + clinician question + numbered note sentences),
at each batch size given. Tokens are counted by re-tokenising the raw replies (+1 stop token
when the reply ended before the limit).

    .venv/bin/python benchmarks/bench_generate.py [--cases 8] [--batch-sizes 1 4] [--max-new-tokens 112]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--max-new-tokens", type=int, default=112)
    parser.add_argument("--load-in-4bit", action="store_true")
    args = parser.parse_args()

    import torch

    from ehrqa.data.archehr import read_dataset
    from ehrqa.llm.backend import GenerationConfig
    from ehrqa.llm.hf import HFChat
    from ehrqa.llm.models import smollm2_dir
    from ehrqa.llm.prompt import case_slots, load_prompt
    from ehrqa.tasks.postprocess import clean_answer

    started = time.perf_counter()
    smollm2_dir()  # converted from the GGUF on first use, then cached
    print(f"smollm2 HF dir ready: {time.perf_counter() - started:.1f} s (conversion only on the first run)")
    cases = [c.input_for(3) for c in read_dataset()][: args.cases]
    prompt = load_prompt("st3-answer@1")
    conversations = [prompt.render(case_slots(c)) for c in cases]
    config = GenerationConfig(max_new_tokens=args.max_new_tokens)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, {len(cases)} sample cases, "
        f"greedy, max_new_tokens {args.max_new_tokens}, 4-bit {args.load_in_4bit}"
    )
    for batch_size in args.batch_sizes:
        started = time.perf_counter()
        chat = HFChat(None, batch_size=batch_size, load_in_4bit=args.load_in_4bit)
        load = time.perf_counter() - started
        chat.chat(conversations[:1], GenerationConfig(max_new_tokens=4))  # warm-up
        started = time.perf_counter()
        replies = chat.chat(conversations, config)
        seconds = time.perf_counter() - started
        tokens = 0
        for reply in replies:
            n = len(chat.tokenizer(reply, add_special_tokens=False)["input_ids"])
            tokens += n + (1 if n < args.max_new_tokens else 0)
        rendered = [
            chat.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations
        ]
        prompt_tokens = sum(len(chat.tokenizer(text)["input_ids"]) for text in rendered)
        words = sum(len(clean_answer(r).split()) for r in replies) / len(replies)
        print(
            f"batch {batch_size}: load {load:.1f} s | {tokens} tokens in {seconds:.1f} s"
            f" = {tokens / seconds:.1f} tok/s"
            f" | {seconds / len(cases):.2f} s/case | mean prompt {prompt_tokens / len(cases):.0f} tokens"
            f" | mean answer {words:.0f} words"
        )
        chat.close()


if __name__ == "__main__":
    main()
