import numpy as np
import pytest

from interp.analyzers.stages.curves import rate_zero_crossings, s_curve_drops


def sigmoids(steps, onsets, falls, width=0.1):
    """A loss made of plateaus and drops: each drop a logistic in log10(step + 1) centred at its onset step."""
    x = np.log10(np.asarray(steps, float) + 1)
    return 5 - sum(f / (1 + np.exp(-(x - np.log10(o + 1)) / width)) for o, f in zip(onsets, falls))


def test_planted_drops_are_found_at_their_steps():
    steps = np.arange(0, 100_000)
    drops = s_curve_drops(steps, sigmoids(steps, [30, 1_000, 30_000], [2.0, 1.0, 0.5]))
    assert len(drops) == 3
    for d, onset in zip(drops, [30, 1_000, 30_000]):
        assert d.onset_step < onset < d.end_step          # the planted centre lies inside the detected drop
    # the tails slower than 2% of the fastest rate fall outside a drop: a small drop loses the most of its own
    np.testing.assert_allclose([d.fall for d in drops], [2.0, 1.0, 0.5], rtol=0.15)
    assert drops[0].fraction == pytest.approx(2.0 / 3.5, rel=0.1)


def test_a_log_spaced_series_keeps_its_one_drop_and_a_flat_curve_has_none():
    steps = [0, 1, 4, 14, 55, 208, 790, 3000]
    drops = s_curve_drops(steps, [4.6, 4.6, 4.5, 4.4, 1.0, 0.2, 0.1, 0.1])
    assert len(drops) == 1 and drops[0].onset_step < 55 < drops[0].end_step
    assert s_curve_drops(steps, [1.0] * 8) == []


def test_rate_zero_crossings_of_a_rise_and_fall():
    steps = [0, 1, 4, 14, 55, 208, 790, 3000]
    llc = [1, 2, 4, 8, 9, 7, 5, 4]                        # rises to step ~55, then falls: one boundary there
    (b,) = rate_zero_crossings(steps, llc, smooth=0)
    assert 14 < b < 208
    assert rate_zero_crossings(steps, np.arange(8.0)) == []


def test_noise_on_a_plateau_makes_no_boundary():
    steps = [0, 1, 4, 14, 55, 208, 790, 3000]
    llc = [3.3, 3.2, 3.5, 40, 200, 100, 6, 6.2]          # jitter at the start and the end, one real turn
    (b,) = rate_zero_crossings(steps, llc, smooth=0)
    assert 14 < b < 208                                  # the peak, at step 55
