"""The bf16 decision (`lotterylib.core.hardware`) with faked CPU flags and devices."""
from __future__ import annotations

import warnings

import pytest

from lotterylib.core import hardware
from lotterylib.core.hardware import decide

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})
AVX512_BF16 = AVX2_ONLY | {"avx512f", "avx512_bf16"}
AMX = AVX2_ONLY | {"avx512f", "amx_tile", "amx_bf16"}


@pytest.mark.parametrize("flags, capability, expected", [
    (AVX2_ONLY, "AVX2", False),        # an ordinary laptop / cloud CPU: bf16 emulated, 9-11x slower
    (AVX512_BF16, "AVX512", True),     # AMD Zen 4, Intel Cooper Lake: native (2.7x faster measured)
    (AMX, "AVX512", True),             # Intel Sapphire Rapids and later
    (AMX, "AVX2", False),              # ATEN_CPU_CAPABILITY=avx2: torch's kernels cannot use them
    (AVX2_ONLY | {"avx512f"}, "AVX512", False),  # AVX-512 without its BF16 extension
])
def test_auto_on_cpu_follows_native_bf16(flags, capability, expected):
    choice = decide("auto", "cpu", flags=flags, capability=capability)
    assert choice.enabled is expected
    assert ("amx_bf16" in choice.reason or "avx512_bf16" in choice.reason) if expected else "fp32" in choice.reason


@pytest.mark.parametrize("cuda_bf16", [True, False])
def test_auto_and_true_on_cuda_follow_bf16_support(cuda_bf16):
    for setting in ("auto", True):
        assert decide(setting, "cuda", cuda_bf16=cuda_bf16, flags=AVX2_ONLY, capability="AVX2").enabled is cuda_bf16


def test_false_is_always_fp32_and_true_without_native_support_too():
    assert not decide(False, "cuda", cuda_bf16=True).enabled
    assert not decide(False, "cpu", flags=AMX, capability="AVX512").enabled
    assert not decide(True, "cpu", flags=AVX2_ONLY, capability="AVX2").enabled
    assert decide(True, "cpu", flags=AMX, capability="AVX512").enabled
    assert decide("true", "cpu", flags=AMX, capability="AVX512").setting is True  # a string from the command line


@pytest.mark.parametrize("bad", ["yes", 1, None, "bf16"])
def test_bad_setting_names_the_parameter(bad):
    with pytest.raises(ValueError, match="bf16 must be 'auto', true or false"):
        decide(bad, "cpu")


def test_record_holds_the_resolved_value_and_the_reason():
    rec = decide("auto", "cpu", flags=AVX2_ONLY, capability="AVX2").record()
    assert rec["bf16"] is False and rec["bf16_setting"] == "auto" and "no native bf16" in rec["bf16_reason"]


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\nbugs\t\t: none\n")
    assert hardware.cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    assert hardware.cpu_flags(tmp_path / "missing") == frozenset()


def test_true_on_a_cpu_without_native_bf16_warns_once(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: AVX2_ONLY)
    monkeypatch.setattr(hardware.torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    hardware._decide_here.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert [hardware.bf16_enabled(True, "cpu") for _ in range(3)] == [False] * 3
            assert not hardware.bf16_enabled("auto", "cpu")
        assert len(caught) == 1 and "no native bf16" in str(caught[0].message)
    finally:
        hardware._decide_here.cache_clear()
