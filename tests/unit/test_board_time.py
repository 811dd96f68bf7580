"""The estimated board time: instruction shapes through a core's pipe model, and cache misses
through the board's bandwidths (no emulator needed: the mixes here are written by hand)."""
import pytest
from pydantic import ValidationError

from edgeprune.harness.board_time import BoardSpec, estimate, load_core
from edgeprune.harness.profiles import get_profile

A72 = get_profile("qemu-aarch64").board
A76 = get_profile("qemu-aarch64-a76").board

FMLA = "fmla v.4s, v.4s, v.s[0]"        # 4 float MACs
SMULL, SMLAL2, SADALP = "smull v.8h, v.8b, v.8b", "smlal2 v.8h, v.16b, v.16b", "sadalp v.4s, v.8h"  # 16 int8 MACs
SDOT = "sdot v.4s, v.16b, v.4b[]"       # 16 int8 MACs


def test_a72_issues_one_q_form_fmla_per_cycle_and_the_a76_two():
    n = 1_000_000
    a72, a76 = estimate({FMLA: n}, None, A72), estimate({FMLA: n}, None, A76)
    assert a72.cycles == pytest.approx(n) and a72.bound == "V units"
    assert a76.cycles == pytest.approx(n / 2)
    assert a72.ms == pytest.approx(n / 1.5e6)


def test_a72_int8_mlal_kernel_does_twice_the_macs_per_cycle_of_float_though_it_retires_more_instructions():
    macs = 16_000_000
    flt = {FMLA: macs / 4}
    int8 = {SMULL: macs / 16, SMLAL2: macs / 16, SADALP: macs / 16}
    assert sum(int8.values()) < sum(flt.values())
    t_flt, t_int8 = estimate(flt, None, A72), estimate(int8, None, A72)
    assert t_flt.cycles / t_int8.cycles == pytest.approx(2.0)
    assert t_int8.bound == "W unit"  # SMULL/SMLAL issue on W only, SADALP on X
    # with dot products (A76) int8 is 4x float per cycle
    assert estimate(flt, None, A76).cycles / estimate({SDOT: macs / 16}, None, A76).cycles == pytest.approx(4.0)


def test_cache_misses_beyond_the_last_level_bound_by_dram_bandwidth():
    lines = 1_000_000
    t = estimate({"add x, x, x": 1000}, [lines, lines], A72)
    assert t.bound == "DRAM bandwidth"
    assert t.cycles == pytest.approx(lines * 64 / (A72.dram_gb_s / A72.clock_ghz))
    assert t.cache_misses == {"L1D": lines, "L2": lines}


def test_every_instruction_shape_has_a_class_and_the_classes_are_reported():
    core = load_core("cortex-a72")
    assert core.classify("ldp q, q, [x], #").name == "load_pair_q"
    assert core.classify("st1 {v.8b}, [x], x").name == "store"
    assert core.classify("b.lo #").name == "branch"
    assert core.classify("sqrdmulh v.4s, v.4s, v.4s").name == "int_mul_q"
    assert core.classify("some future instruction").name == "int"  # the catch-all
    t = estimate({FMLA: 10, "ldr q, [x], #": 5, "other": 1}, None, A72)
    assert t.classes == {"fp_fma_q": 10, "load": 5, "int": 1}


def test_a_board_names_a_known_core_and_whole_cache_sets():
    good = dict(name="b", core="cortex-a72", clock_ghz=1.0, dram_gb_s=1.0,
                caches=[{"name": "L1D", "bytes": 32768, "ways": 2, "refill_bytes_per_cycle": 16},
                        {"name": "L2", "bytes": 1 << 20, "ways": 16}])
    assert BoardSpec(**good).cache_arg() == "32768:2/1048576:16"
    with pytest.raises(ValidationError, match="not a known core"):
        BoardSpec(**{**good, "core": "cortex-x9"})
    with pytest.raises(ValidationError, match="whole number"):
        BoardSpec(**{**good, "caches": [{"name": "L1D", "bytes": 32768, "ways": 3}]})
    with pytest.raises(ValidationError, match="refill_bytes_per_cycle"):
        BoardSpec(**{**good, "caches": [{"name": "L1D", "bytes": 32768, "ways": 2}, good["caches"][1]]})


def test_shipped_emulated_boards_say_what_they_stand_for_and_where_their_numbers_come_from():
    for name, board in (("qemu-aarch64", "Raspberry Pi 4"), ("qemu-aarch64-a76", "Raspberry Pi 5")):
        profile = get_profile(name)
        assert profile.board.name.startswith(board) and profile.board.sources
        assert board in profile.description
        assert load_core(profile.board.core).source.startswith("LLVM")
