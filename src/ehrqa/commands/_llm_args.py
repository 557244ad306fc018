"""Flags shared by the one-subtask commands that can call a language model, and their configs."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_backend_arguments, backend_spec_from_args
from ehrqa.commands._flags import add_config_flags, given

# Config fields that take no flag of their own: --method and the model flags set them.
NOT_FLAGS = ("method", "backend", "voters", "evidence")


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One flag per setting of the subtask's config (the keys of a recipe step)."""
    add_config_flags(parser.add_argument_group("settings (as in a recipe step)"), config_class, skip=NOT_FLAGS)


def config_from_args(args: argparse.Namespace, config_class: type, method: str):
    """The subtask's config from the settings flags given; the others keep the config's defaults."""
    from ehrqa.config import from_dict

    return from_dict(config_class, {**given(args, config_class, NOT_FLAGS), "method": method}, "flags")


def add_evidence_method_arguments(parser: argparse.ArgumentParser, config_class: type) -> None:
    parser.add_argument(
        "--method",
        choices=["aligner", "llm"],
        help="aligner: the retrieval aligner (default); llm: chat models that vote (the default when a model "
        "flag such as --backend or --model is given)",
    )
    add_backend_arguments(parser, default_model="the shipped SmolLM2-135M-Instruct")
    add_config_arguments(parser, config_class)


def resolved_method(args: argparse.Namespace, default: str) -> str:
    """``--method`` as given; without it, ``llm`` when a model flag is given, else ``default``."""
    if args.method:
        return args.method
    return "llm" if _model_flags(args) else default


def _model_flags(args: argparse.Namespace) -> list[str]:
    """Every chat-model flag given (those of ``add_backend_arguments``), spelled as on the command line."""
    from ehrqa.commands._common import BOTH, HF_ONLY, OPENAI_ONLY

    names = ("backend", "model", *HF_ONLY, *OPENAI_ONLY, *BOTH)
    return ["--" + n.replace("_", "-") for n in names if getattr(args, n, None) is not None]


def refuse_model_flags(args: argparse.Namespace, uses: str) -> None:
    """Model flags given to a method without a chat model are refused, never silently ignored."""
    from ehrqa.errors import DataError

    flags = _model_flags(args)
    if flags:
        raise DataError(f"model flags ({', '.join(flags)}) need --method llm; {uses}")


def evidence_config(args: argparse.Namespace, config_class):
    """The ST2/ST4 config and the backend spec from the flags (no backend for the aligner method)."""
    if resolved_method(args, "aligner") == "aligner":
        refuse_model_flags(args, "the aligner uses --aligner DIR")
        return config_from_args(args, config_class, "aligner"), None
    return config_from_args(args, config_class, "llm"), backend_spec_from_args(args)
