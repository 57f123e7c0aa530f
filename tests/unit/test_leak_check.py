"""The leak check the reliability tests share: a leak (steady growth) fails it, warm-up and noise do not."""

from __future__ import annotations

import pytest

from tests.conftest import assert_no_leak


@pytest.mark.parametrize(
    "counts",
    [
        (40, 48, 48),  # warm-up over the first cycles, then flat
        (46, 45, 47),  # one up, one down: noise (file descriptors in a CI run)
        (46, 46, 47),  # within the noise
    ],
)
def test_warm_up_and_noise_pass(counts: tuple[int, int, int]) -> None:
    assert_no_leak("fds", counts, slack=2, noise=1)


@pytest.mark.parametrize("counts", [(40, 49, 58), (40, 41, 44), (40, 38, 43)])
def test_steady_growth_fails(counts: tuple[int, int, int]) -> None:
    with pytest.raises(AssertionError, match="grew by"):
        assert_no_leak("fds", counts, slack=2, noise=1)
