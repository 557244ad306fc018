"""Flags shared by the one-subtask commands that can call a language model, and their configs."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_backend_arguments, backend_spec_from_args


def add_sampling_arguments(parser: argparse.ArgumentParser, *, default_prompt: str, max_new_tokens: int) -> None:
    g = parser.add_argument_group("prompting and sampling")
    g.add_argument(
        "--prompt",
        default=default_prompt,
        metavar="ID",
        help=f"prompt id@version or a prompt file (default: {default_prompt})",
    )
    g.add_argument("--samples", type=int, default=1, help="samples per case (default: 1; >1 needs --temperature)")
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    g.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help=f"(default: {max_new_tokens})")
    g.add_argument("--examples", metavar="DIR", help="annotated cases to retrieve few-shot examples from")
    g.add_argument("--shots", type=int, default=0, help="retrieved examples per prompt (default: 0)")


def add_evidence_method_arguments(parser: argparse.ArgumentParser, *, default_prompt: str) -> None:
    parser.add_argument(
        "--method",
        choices=["aligner", "llm"],
        help="aligner: the retrieval aligner (default); llm: chat models that vote (the default when a model "
        "flag such as --backend or --model is given)",
    )
    parser.add_argument("--aligner", metavar="DIR", help="aligner model directory (default: the shipped model)")
    add_backend_arguments(parser, default_model="the shipped SmolLM2-135M-Instruct")
    add_sampling_arguments(parser, default_prompt=default_prompt, max_new_tokens=768)
    parser.add_argument(
        "--vote-threshold",
        type=float,
        default=0.5,
        metavar="F",
        help="keep what at least F x samples name (default: 0.5)",
    )


def resolved_method(args: argparse.Namespace, default: str) -> str:
    """``--method`` as given; without it, ``llm`` when a model flag is given, else ``default``."""
    if args.method:
        return args.method
    return "llm" if _model_flags_given(args) else default


def _model_flags(args: argparse.Namespace) -> list[str]:
    """Every chat-model flag given (those of ``add_backend_arguments``), spelled as on the command line."""
    from ehrqa.commands._common import BOTH, HF_ONLY, OPENAI_ONLY

    names = ("backend", "model", *HF_ONLY, *OPENAI_ONLY, *BOTH)
    return ["--" + n.replace("_", "-") for n in names if getattr(args, n, None) is not None]


def _model_flags_given(args: argparse.Namespace) -> bool:
    return bool(_model_flags(args))


def refuse_model_flags(args: argparse.Namespace, uses: str) -> None:
    """Model flags given to a method without a chat model are refused, never silently ignored."""
    from ehrqa.errors import DataError

    given = _model_flags(args)
    if given:
        raise DataError(f"model flags ({', '.join(given)}) need --method llm; {uses}")


def evidence_config(args: argparse.Namespace, config_class):
    """The ST2/ST4 config and the backend spec from the flags (no backend for the aligner method)."""
    from ehrqa.config import from_dict

    if resolved_method(args, "aligner") == "aligner":
        refuse_model_flags(args, "the aligner uses --aligner DIR")
        return config_class(method="aligner", aligner=args.aligner), None
    settings = {
        "method": "llm",
        "aligner": args.aligner,
        "prompt": args.prompt,
        "samples": args.samples,
        "temperature": args.temperature,
        "max_new_tokens": args.max_new_tokens,
        "vote_threshold": args.vote_threshold,
        "shots": args.shots,
        "examples": args.examples,
    }
    return from_dict(config_class, settings, "flags"), backend_spec_from_args(args)
