"""Precise filters for library messages that alarm users without telling them anything.

Installed on ``import ehrqa`` (CLI and Python API alike); each filter drops one known message and
lets every other record of the same logger through.
"""

from __future__ import annotations

import logging

# sentence-transformers imports peft, which imports bitsandbytes; on CPUs with AVX512-BF16 its CPU
# backend then warns that the optional `kernels` package (a Hub download) is missing, and uses its
# own built-in CPU code instead. ehrqa never needs that kernel: the 4-bit path is for GPUs.
BITSANDBYTES_CPU_LOGGER = "bitsandbytes.backends.cpu.ops"
BITSANDBYTES_KERNELS_NOTICE = "Failed to load CPU gemm_4bit_forward from kernels-community"


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def install() -> None:
    """Add the filters once (a second call adds nothing)."""
    logger = logging.getLogger(BITSANDBYTES_CPU_LOGGER)
    if not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage(BITSANDBYTES_KERNELS_NOTICE))
