"""What this machine computes fast, so defaults can follow the hardware instead of assuming it.

Two CPUs of the same cloud instance type can differ: one has native bf16 and int8 dot products
(AVX512-BF16, AVX512-VNNI or AMX), another only AVX2, where bf16 matmuls are emulated (about 100x slower
than fp32) and int8 matrix products with signed weights can saturate. Training precision
(:func:`texttune.training.precision_flags`), the ONNX int8 weight type (:func:`int8_weight_type`) and
the benchmarks' machine line (:func:`describe_machine`) all ask here.

Example:
    >>> from texttune.hardware import int8_weight_type
    >>> int8_weight_type() in ("QInt8", "QUInt8")
    True
"""

from __future__ import annotations

import os
import platform
from functools import cache

#: CPU flags that decide the fast paths, as Linux names them in /proc/cpuinfo.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_tile")


def _torch_probe(name: str) -> bool:
    import torch

    check = getattr(torch.cpu, name, None)
    try:
        return bool(check is not None and check())
    except RuntimeError:  # a build without the probe's backend
        return False


def cpu_has_native_bf16() -> bool:
    """True where the CPU multiplies bf16 natively (AVX512-BF16 or AMX tiles).

    There bf16 matmuls run about 2.5x faster than fp32; without it they are emulated and far slower.
    """
    return _torch_probe("_is_avx512_bf16_supported") or _torch_probe("_is_amx_tile_supported")


def cpu_has_vnni() -> bool:
    """True where the CPU has int8 dot-product instructions (AVX512-VNNI or AVX-VNNI)."""
    return _torch_probe("_is_vnni_supported") or bool({"avx512_vnni", "avx_vnni"} & cpu_flags())


def int8_weight_type() -> str:
    """The ONNX Runtime weight type for dynamic int8 quantization on this CPU.

    ONNX Runtime multiplies uint8 activations by int8 weights (``QInt8``) with VNNI exactly; on CPUs
    without VNNI (AVX2, AVX512F) that product goes through 16-bit intermediates that can saturate, and
    its documentation recommends uint8 weights (``QUInt8``) there. ``texttune export`` tries this type
    first and the other one when the int8 model loses more than ``--max-accuracy-drop``.
    """
    return "QInt8" if cpu_has_vnni() else "QUInt8"


@cache
def cpu_flags() -> frozenset[str]:
    """The flags of :data:`CPU_FLAGS` this CPU reports (empty where /proc/cpuinfo is not readable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split()) & frozenset(CPU_FLAGS)
    except OSError:
        pass
    return frozenset()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine() -> str:
    """One line naming the CPU, its relevant flags, torch's kernels and threads, and any GPU.

    Every benchmark prints it first, so numbers from different machines are never compared blind.
    """
    import torch

    flags = cpu_flags()
    shown = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in CPU_FLAGS)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"machine: {_cpu_model()}, {os.cpu_count()} CPUs; {shown}; native bf16 "
        f"{'yes' if cpu_has_native_bf16() else 'no'}, int8 weights {int8_weight_type()}; torch "
        f"{torch.__version__} ({torch.backends.cpu.get_cpu_capability()} kernels, "
        f"{torch.get_num_threads()} threads); GPU {gpu}"
    )
