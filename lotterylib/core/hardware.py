"""bf16 autocast only where it is native and faster: the `bf16` parameter ("auto", true or false).

"auto" turns bfloat16 autocast on for a CUDA GPU that supports bf16, or a CPU with AMX (`amx_bf16`) or
AVX-512 BF16 (`avx512_bf16`) instructions, and off elsewhere. Measured on one MiniLM-L6 training step
(batch 32, 64 tokens, 1 thread, torch 2.13): AMD EPYC with avx512_bf16, no AMX: fp32 2.96 s, bf16 1.10 s
(2.7x faster); the same CPU limited to AVX2 (`ATEN_CPU_CAPABILITY=avx2`): fp32 2.48 s, bf16 27.7 s (11x
slower, bf16 emulated). `true` on a CPU without native bf16 runs in fp32, with one warning.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

NATIVE_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # CPU instructions that make bf16 matmuls native
SETTINGS = ("auto", True, False)


@dataclass(frozen=True)
class Bf16Decision:
    """Whether bf16 autocast is on, what was asked for, and why."""

    setting: str | bool
    enabled: bool
    reason: str

    def record(self) -> dict:
        """The keys a run records in params.json and metrics.json."""
        return {"bf16": self.enabled, "bf16_setting": self.setting, "bf16_reason": self.reason}


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_cpu_bf16(flags: frozenset[str], capability: str) -> str | None:
    """The native bf16 instruction set torch may use on this CPU, or None.

    `capability` is `torch.backends.cpu.get_cpu_capability()`: with `ATEN_CPU_CAPABILITY=avx2` (or on an
    AVX2-only CPU) torch's kernels do not use AVX-512, so bf16 would be emulated."""
    if "AVX512" not in capability.upper() and "AMX" not in capability.upper():
        return None
    return next((f for f in NATIVE_CPU_FLAGS if f in flags), None)


def decide(setting: str | bool, device_type: str, cuda_bf16: bool = False,
           flags: frozenset[str] = frozenset(), capability: str = "") -> Bf16Decision:
    """The pure decision from a device's facts (see the module docstring)."""
    if isinstance(setting, str) and setting.lower() in ("true", "false"):
        setting = setting.lower() == "true"
    if setting not in SETTINGS or (isinstance(setting, int) and not isinstance(setting, bool)):
        raise ValueError(f"bf16 must be 'auto', true or false, not {setting!r}: set `bf16` in the preset "
                         "or the notebook parameters to one of them.")
    if setting is False:
        return Bf16Decision(setting, False, "bf16 false: fp32")
    if device_type == "cuda":
        if cuda_bf16:
            return Bf16Decision(setting, True, f"bf16 {setting}: the CUDA GPU supports bf16")
        return Bf16Decision(setting, False, f"bf16 {setting}: the CUDA GPU has no bf16 support, fp32")
    native = native_cpu_bf16(flags, capability) if device_type == "cpu" else None
    if native:
        return Bf16Decision(setting, True, f"bf16 {setting}: the CPU has {native} (torch uses {capability})")
    why = (f"the {device_type} device has no native bf16" if device_type != "cpu" else
           f"the CPU has no native bf16 (no {' or '.join(NATIVE_CPU_FLAGS)} usable; torch uses "
           f"{capability or 'unknown'}): bf16 would be emulated, many times slower")
    return Bf16Decision(setting, False, f"bf16 {setting}: {why}, fp32")


@functools.lru_cache(maxsize=None)
def _decide_here(setting: str | bool, device_type: str) -> Bf16Decision:
    cuda_bf16 = device_type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    choice = decide(setting, device_type, cuda_bf16, cpu_flags(), torch.backends.cpu.get_cpu_capability())
    if choice.setting is True and not choice.enabled:
        warnings.warn(f"{choice.reason} (set bf16: auto or false to silence this warning)", stacklevel=3)
    return choice


def decide_bf16(setting: str | bool, device: torch.device | str | None = None) -> Bf16Decision:
    """The decision for this machine's `device` (default: CUDA if available, else CPU). Cached: a `true`
    that cannot be honoured warns once per process."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return _decide_here(setting, torch.device(device).type)


def bf16_enabled(setting: str | bool, device: torch.device | str | None = None) -> bool:
    """Whether autocast runs in bf16 for this setting on `device`."""
    return decide_bf16(setting, device).enabled
