"""What the machine computes fast decides defaults; every benchmark names the machine."""

from __future__ import annotations

import pytest

from texttune import hardware


@pytest.mark.parametrize(("vnni", "expected"), [(True, "QInt8"), (False, "QUInt8")])
def test_int8_weights_follow_the_cpus_dot_product_instructions(vnni, expected, monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_vnni", lambda: vnni)
    assert hardware.int8_weight_type() == expected


def test_cpu_flags_are_the_ones_that_decide_fast_paths():
    assert hardware.cpu_flags() <= frozenset(hardware.CPU_FLAGS)


def test_describe_machine_names_every_flag_and_the_precision_choices():
    line = hardware.describe_machine()
    for flag in hardware.CPU_FLAGS:
        assert f"{flag} yes" in line or f"{flag} no" in line
    assert "native bf16 " in line and "int8 weights Q" in line and "threads" in line and "GPU " in line
