import numpy as np
import pytest


def test_calibration_options_are_validated():
    from interp.analyzers.stages.analyzer import Stages
    from interp.errors import ConfigError

    cfg = Stages.config_from({"calibrate": "true", "calib_eps_max": "1e-3", "calib_eps_min": "1e-5"})
    assert cfg.calibrate and cfg.calib_eps_max == 1e-3
    with pytest.raises(ConfigError, match="calib_eps_min = 0.01: must be below calib_eps_max"):
        Stages.config_from({"calib_eps_min": "1e-2", "calib_eps_max": "1e-3"})
    with pytest.raises(ConfigError, match="calib_n"):
        Stages.config_from({"calib_n": "1"})


def test_calibrated_stages_on_a_bundled_checkpoint(bundled, tmp_path):
    """wide step 3000: 1e-2 diverges at once, 1e-3 does not, so the ceiling is 1e-4 (margin 10); the stored traces
    are the chains' mini-batch losses (the first one checked against a direct computation)."""
    import torch

    from interp.activations.cache import CacheSettings
    from interp.analyzers.base import Unit
    from interp.analyzers.stages.analyzer import Stages
    from interp.analyzers.stages.llc import prompt_loss
    from interp.runner.context import Context, ContextSettings

    ref = max(bundled.refs(run="wide", seed=0), key=lambda r: r.step)
    cfg = Stages.config_from({"calibrate": True, "calib_eps_max": 1e-2, "calib_eps_min": 1e-4, "calib_n": 3,
                              "n_chains": 1, "n_burnin": 3, "n_draws": 8})
    ctx = Context(ContextSettings(CacheSettings(tmp_path / "cache"), "cpu"))
    result = Stages(cfg).run(Unit("stages", (ref,)), ctx)
    a, s = result.arrays, result.scalars
    np.testing.assert_allclose(a["calib_eps"], [1e-2, 1e-3, 1e-4])
    assert list(a["calib_ran"]) == [True, True, True] and list(a["calib_diverged"]) == [1, 0, 0]
    assert s["calib_ceiling"] == pytest.approx(1e-4)
    assert a["calib_trace"].shape == (3, 1, 11) and np.isnan(a["calib_trace"][0, 0, -1])
    if s["calibrated"]:
        assert s["eps_used"] == pytest.approx(1e-4) and a["calib_trend"][2] <= 3 and s["llc"] == a["calib_llc"][2]
    else:
        assert s["eps_used"] == cfg.eps and a["calib_trend"][2] > 3
    # the first step of every candidate is the loss at the checkpoint on the first random batch
    prompts, _ = Stages(cfg)._llc_data(ref, ctx)
    problem = prompt_loss(ctx.model(ref), prompts, cfg.batch_prompts, cfg.seed)
    rows = problem.batches[int(np.random.default_rng(cfg.seed).integers(len(problem.batches)))]
    toks, mask = torch.as_tensor(prompts.tokens[rows]).long(), torch.as_tensor(prompts.loss_mask[rows])
    with torch.no_grad():
        lp = torch.log_softmax(ctx.model(ref)(toks)[:, :-1].double(), dim=-1)
    first = float((-lp.gather(-1, toks[:, 1:, None])[..., 0] * mask).sum() / mask.sum())
    np.testing.assert_allclose(a["calib_trace"][:, 0, 0], first, rtol=1e-5)
    figs = {f["name"]: f for f in Stages(cfg).summarize([result], {})["figures"]}
    assert len(figs["sgld_calibration"]["lines"]) == 3 and not figs["sgld_calibration"]["skip_reason"]
    assert figs["sgld_eps"]["lines"] and figs["sgld_trace"]["lines"]


def test_loss_at_the_checkpoint_from_large_passes_equals_the_mean_over_mini_batches(bundled):
    """``PromptLoss.init_loss`` (per-prompt losses in large no-grad passes) against the definition: the mean over
    the SGLD mini-batches of each batch's mean scored loss, each batch computed on its own in float64."""
    import torch

    from interp.analyzers.stages.llc import prompt_loss
    from interp.checkpoints.loading import load_ref
    from interp.prompts.source import PromptSource

    ref = max(bundled.refs(run="universal", seed=1), key=lambda r: r.step)
    model = load_ref(ref, device="cpu")
    prompts = PromptSource(n_background=256, split="train", seed=0).build(ref)
    problem = prompt_loss(model, prompts, 16, seed=0)
    want = []
    with torch.no_grad():
        for rows in problem.batches:
            toks, mask = torch.as_tensor(prompts.tokens[rows]).long(), torch.as_tensor(prompts.loss_mask[rows])
            lp = torch.log_softmax(model(toks)[:, :-1].double(), dim=-1)
            want.append(float((-lp.gather(-1, toks[:, 1:, None])[..., 0] * mask).sum() / mask.sum()))
    assert len(problem.batches) > 20
    for chunk in (7, 128, 10**6):   # ragged chunks, several batches per chunk, everything in one pass
        assert problem.init_loss(model, chunk) == pytest.approx(np.mean(want), rel=1e-6)


def test_the_llc_samples_the_batches_the_trainer_drew_before_the_checkpoint(bundled, tmp_path):
    """The SGLD data are the training batches at the steps just before the checkpoint, as interp's trainer drew them
    (its own batch function, rebuilt from the train settings it saved beside the checkpoints): the rare task at its
    training frequency, not whole train splits (which weighted it 14x)."""
    import json

    from interp.activations.cache import CacheSettings
    from interp.analyzers.stages.analyzer import Stages
    from interp.runner.context import Context, ContextSettings
    from interp.toys.training import TrainConfig

    ref = max(bundled.refs(run="narrow", seed=1), key=lambda r: r.step)
    ctx = Context(ContextSettings(CacheSettings(tmp_path / "cache"), "cpu"))
    data, source = Stages()._llc_data(ref, ctx)
    train = json.loads((ref.path.parent / "config.json").read_text())["train"]
    draw = TrainConfig(**{k: v for k, v in train.items() if k not in ("mixture", "language")},
                       mixture=ref.mixture_spec).batches()
    n = -(-Stages().config.llc_prompts // train["batch_size"])              # whole batches, enough prompts
    steps = list(range(ref.step - n, ref.step))
    expected = np.concatenate([draw(s).tokens for s in steps])
    np.testing.assert_array_equal(data.tokens, expected)
    span = f"{steps[0]}-{steps[-1]}" if n > 1 else f"{steps[0]}"
    assert source.startswith("the trainer's batches at step"), source
    assert span in source, source
    rare = data.task_names.index("rare")
    assert abs((data.task_id == rare).mean() - 0.05) < 0.01   # the training frequency (was 0.43 of scored tokens)
