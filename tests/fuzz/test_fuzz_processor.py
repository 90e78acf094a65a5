"""Fuzzing FerImageProcessor: random shapes, dtypes and values give pixel_values or a ValueError, never a crash."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from fer_model import FerImageProcessor

processor = FerImageProcessor()
DTYPES = st.sampled_from([np.uint8, np.uint16, np.int32, np.int64, np.float32, np.float64, np.bool_])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(DTYPES, array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=70)))
def test_random_arrays_give_pixel_values_or_a_value_error(array: np.ndarray) -> None:
    start = time.perf_counter()
    try:
        pixel_values = processor(array)["pixel_values"]
    except ValueError as error:
        assert str(error)  # a readable message, not an empty exception
    else:
        assert pixel_values.ndim == 4 and pixel_values.shape[1:] == (3, 48, 48)
        assert torch.isfinite(pixel_values).all()
    assert time.perf_counter() - start < 2.0


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.none(), st.integers(), st.text(), st.binary(), st.lists(st.integers(), max_size=3),
                 st.dictionaries(st.text(), st.integers(), max_size=2)))
def test_non_images_are_value_errors(obj: object) -> None:
    with pytest.raises(ValueError):
        processor(obj)
