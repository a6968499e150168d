"""BF16 without ml_dtypes: widening is exact, narrowing is one round to nearest even.

The reference rounds the exact rational value of each input (``fractions.Fraction``) to
the BF16 grid and encodes the result with ``struct``: no numpy cast takes part in it.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction

import numpy as np
import pytest
import safetensors.torch
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fl_gitops.tensors import (
    BF16,
    UPDATE_ALGORITHM,
    TensorReader,
    digest_file,
    load,
    load_bytes,
    narrow,
    read_header,
    serialize,
    sha256_digest,
    update_digest,
    values_f64,
    widen,
)

MAX_BF16 = Fraction(2**8 - 1, 2**7) * 2**127  # 0x7F7F


def f64_of_bits(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


def f32_bits(x: float) -> int:
    return int(struct.unpack("<I", struct.pack("<f", x))[0])


def reference_bits(x: float) -> int:
    """BF16 bits of ``x`` rounded once to nearest, ties to even, by exact arithmetic."""
    sign = 0x8000 if math.copysign(1.0, x) < 0 else 0
    if math.isinf(x):
        return sign | 0x7F80
    v = abs(Fraction(x))
    if v == 0:
        return sign
    e = v.numerator.bit_length() - v.denominator.bit_length()
    if Fraction(2) ** e > v:
        e -= 1
    assert Fraction(2) ** e <= v < Fraction(2) ** (e + 1)
    quantum = Fraction(2) ** (max(e, -126) - 7)  # below 2^-126: BF16's subnormal grid
    n = v / quantum
    whole = math.floor(n)
    rest = n - whole
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and whole % 2 == 1):
        whole += 1
    r = whole * quantum
    if r > MAX_BF16:
        return sign | 0x7F80
    # r is a BF16 value, so float(r) is exact and a float32: its top half is the answer.
    bits = f32_bits(float(r))
    assert bits & 0xFFFF == 0
    return sign | (bits >> 16)


def narrowed_bits(x: float, dtype: type) -> int:
    return int(narrow(np.array([x], dtype=dtype)).view(np.uint16)[0])


def check_one(x: float, dtype: type) -> None:
    got = narrowed_bits(x, dtype)
    if math.isnan(x):
        assert got & 0x7F80 == 0x7F80 and got & 0x7F, f"{got:#06x} is not a NaN"
        assert got & 0x0040, f"{got:#06x} is not a quiet NaN"
        assert got & 0x8000 == (0x8000 if math.copysign(1.0, x) < 0 else 0)
        return
    assert got == reference_bits(x), f"{x!r}: {got:#06x} != {reference_bits(x):#06x}"


# float32 bit patterns: every BF16 value (the top half) with a low half that makes it a
# tie (0x8000), just either side of one, exact (0), or anything; subnormals, the largest
# finite values and NaN payloads are all among the top halves.
low_halves = st.one_of(
    st.sampled_from([0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF]),
    st.integers(0, 0xFFFF),
)
f32_patterns = st.builds(lambda hi, lo: (hi << 16) | lo, st.integers(0, 0xFFFF), low_halves)


def f32_value(bits: int) -> float:
    return float(np.array([bits], dtype=np.uint32).view(np.float32)[0])


@settings(max_examples=3000, deadline=None)
@given(f32_patterns)
@example(0x3F808000)  # 1 + 2^-8: a tie, to even (1)
@example(0x3F818000)  # 1 + 3·2^-8: a tie, to even (up)
@example(0x7F7F7FFF)  # just under the overflow threshold: the largest finite value
@example(0x7F7F8000)  # the overflow threshold itself: ties to even is Inf
@example(0x7F7FFFFF)  # float32's largest: Inf
@example(0x00008000)  # the smallest subnormal's tie: to even (0)
@example(0x00018000)  # a subnormal tie: up
@example(0x007FFFFF)  # the largest float32 subnormal: rounds up into the normals
@example(0x7FC00001)  # a quiet NaN with a payload only in the low half
@example(0x7F800001)  # a signalling NaN whose payload the truncation would drop (Inf)
@example(0xFFFFFFFF)  # a NaN whose rounding would carry into the sign
def test_float32_rounds_to_nearest_even(bits: int) -> None:
    x = f32_value(bits)
    check_one(x, np.float32)
    if math.isnan(x):  # the payload's top bits are kept
        assert narrowed_bits(x, np.float32) == (bits >> 16) | 0x0040


# float64 bit patterns: a float32 pattern's double, with noise in the bits float32 does not
# have (just above), or that double minus a few ulps (just below): the values where rounding
# first to nearest float32 would turn a near-tie into a tie; plus any double at all (huge,
# tiny, float32-overflowing, NaN payloads of every kind).
def f64_near(f32: int, noise: int, below: bool) -> int:
    d = f32_value(f32)
    if math.isnan(d) or math.isinf(d):
        return struct.unpack("<Q", struct.pack("<d", d))[0] | noise
    base = struct.unpack("<Q", struct.pack("<d", d))[0]
    return max(0, base - noise) if below else base | noise


f64_patterns = st.one_of(
    st.builds(f64_near, f32_patterns, st.integers(1, (1 << 29) - 1), st.booleans()),
    st.integers(0, (1 << 64) - 1),
)


@settings(max_examples=4000, deadline=None)
@given(f64_patterns)
@example(0x3FF0100000000001)  # 1 + 2^-8 + 2^-52: a double rounding would give 1, not up
@example(0x3FF00FFFFFFFFFFF)  # 1 + 2^-8 - 2^-52: down to 1
@example(0x47EFF00000000000)  # the overflow threshold: Inf (ties to even)
@example(0x47EFEFFFFFFFFFFF)  # just below it: the largest finite value
@example(0x47EFFFFFE0000000)  # float32's largest
@example(0x47F0000000000000)  # 2^128: beyond float32, Inf
@example(0x7FEFFFFFFFFFFFFF)  # float64's largest: Inf
@example(0x3690000000000001)  # just above half the smallest BF16 subnormal: up
@example(0x3690000000000000)  # exactly half of it: a tie, to even (0)
@example(0x3800000000000000)  # 2^-127: a BF16 subnormal, exact
@example(0x0000000000000001)  # the smallest double: 0
@example(0x7FF0000000000001)  # a signalling NaN with a low payload
@example(0xFFF8000000000000)  # a negative quiet NaN
def test_float64_rounds_once_to_nearest_even(bits: int) -> None:
    check_one(f64_of_bits(bits), np.float64)
    x = f64_of_bits(bits)
    check_one(-x, np.float64)


def test_widening_is_exact_and_narrowing_gives_back_every_bf16_value() -> None:
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    wide = widen(every.view(BF16))
    assert wide.dtype == np.float32
    np.testing.assert_array_equal(wide.view(np.uint32), every.astype(np.uint32) << 16)
    back = narrow(wide).view(np.uint16)
    nan = np.isnan(wide)
    np.testing.assert_array_equal(back[~nan], every[~nan])
    np.testing.assert_array_equal(back[nan], every[nan] | 0x0040)
    with np.errstate(invalid="ignore"):  # casting signalling NaNs
        wide64 = wide.astype(np.float64)
    np.testing.assert_array_equal(narrow(wide64).view(np.uint16)[~nan], every[~nan])
    np.testing.assert_array_equal(values_f64(every.view(BF16)), wide64)


def test_bf16_tensors_are_written_read_and_hashed_as_their_bytes(tmp_path) -> None:
    values = np.linspace(-3.0, 3.0, 1000).reshape(10, 100)
    tensors = {"w": narrow(values), "b": np.arange(4, dtype=np.float32)}
    data = serialize(tensors)
    path = tmp_path / "m.safetensors"
    path.write_bytes(data)
    header = read_header(path)
    assert header.tensors["w"].dtype == "BF16"
    assert header.tensors["w"].nbytes == 2000
    back = load(path)
    assert back["w"].dtype == BF16 and back["w"].shape == (10, 100)
    assert back["w"].tobytes() == tensors["w"].tobytes()
    assert load_bytes(data)["w"].tobytes() == tensors["w"].tobytes()
    with TensorReader(path) as reader:
        pieces = [c.tobytes() for _, c in reader.chunks("w", 64)]
    assert b"".join(pieces) == tensors["w"].tobytes()
    assert digest_file(path, "sha256") == sha256_digest(data)
    assert update_digest(data) == digest_file(path, UPDATE_ALGORITHM)
    assert serialize(load(path)) == data  # same tensors, same bytes


def test_our_bf16_files_are_safetensors_own_and_torch_reads_the_same_values(tmp_path) -> None:
    t = torch.linspace(-2.0, 2.0, 333, dtype=torch.float64).reshape(3, 111)
    ours = tmp_path / "ours.safetensors"
    ours.write_bytes(serialize({"w": narrow(t.numpy())}))
    loaded = safetensors.torch.load_file(str(ours))["w"]
    assert loaded.dtype == torch.bfloat16
    # torch's own float64 -> bfloat16 rounds once to nearest even too.
    assert torch.equal(loaded, t.to(torch.bfloat16))
    theirs = tmp_path / "theirs.safetensors"
    safetensors.torch.save_file({"w": t.to(torch.bfloat16)}, str(theirs))
    assert load(theirs)["w"].tobytes() == load(ours)["w"].tobytes()


def test_arithmetic_on_raw_bf16_is_refused_rather_than_misread() -> None:
    raw = narrow(np.ones(3))
    with pytest.raises(TypeError):
        raw + 1
