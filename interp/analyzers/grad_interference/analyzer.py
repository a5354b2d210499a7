"""``grad-interference``: how much an update for one task moves another task's loss (Huang et al., arXiv 2605.29548,
section 4).

The method, the choices that are ours and the caveats: ``method.md`` beside this module.

Each task's gradient takes one backward pass per task, the floor: measured on a 2-core CPU, a loop of
``autograd.grad`` per task was as fast as ``vmap(grad)`` over tasks (38 vs 40 ms for 4 x 256 examples), and
per-example vmap cost about 4x more. A task with more than ``--batch-size`` prompts takes one backward per batch,
summed, so memory is bounded by the batch and not by the task. The first-order check takes its SGD step on a float64
copy of the model. The tasks come from either source (a toy run's mixture, a task file); the non-task tokens from
the background of the evaluation prompts (the mixture's background sequences, or text).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interp.analyzers.base import Analyzer, Unit
from interp.checkpoints.hooks import mlp_param
from interp.config import Options, option
from interp.maths.determinism import deterministic
from interp.maths.losses import in_chunks, scored_count, summed_loss, task_loss
from interp.maths.stats import cosine_matrix
from interp.results import Result
from interp.runner.context import Needs


@dataclass(frozen=True)
class GradInterferenceConfig(Options):
    lr: float = option(1e-4, gt=0)
    # task neurons: this share of the first layer's MLP neurons, the top ones by the norm of g_r over their
    # parameters (a fixed count would be every neuron of a narrow model and a sliver of a wide one)
    neuron_fraction: float = option(0.25, gt=0, le=1)
    n_batches: int = option(4, ge=2)
    batch_size: int = option(64, ge=1)    # prompts per mixed batch where the run's own batches are unknown
    background_prompts: int = option(256, ge=0)   # background rows for the background pseudo-task's gradient
    seed: int = option(10_000, ge=0)      # of the mixed batches drawn where the run's own are unknown
    check_first_order: bool = True
    exclude: tuple[str, ...] = ()
    rare_task: str = ""                   # the target task by name (default: the least frequent)


class GradInterferenceResult(Result):
    @property
    def tasks(self) -> list[str]:
        return list(self.scalars["tasks"])


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")


class GradientSpace:
    """Flattened gradients of a model's (included) parameters, and which entries belong to each MLP neuron."""

    def __init__(self, model, exclude: tuple[str, ...] = ()):
        named = [(n, p) for n, p in model.named_parameters() if n not in exclude]
        unknown = set(exclude) - {n for n, _ in model.named_parameters()}
        if unknown:
            from interp.errors import ConfigError

            raise ConfigError(f"grad-interference: exclude names unknown parameters {sorted(unknown)}")
        self.model, self.names = model, [n for n, _ in named]
        self.params = [p for _, p in named]
        self.offsets = np.cumsum([0] + [p.numel() for p in self.params])

    def grad(self, loss) -> np.ndarray:
        import torch

        gs = torch.autograd.grad(loss, self.params, allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).double()
                          for g, p in zip(gs, self.params)]).cpu().numpy()

    def neuron_norms(self, g: np.ndarray, layer: int = 0) -> np.ndarray:
        """[neuron] norm of g over each first-layer neuron's parameters (W_in column, b_in, W_out row)."""
        parts = []
        for name, shape_fn in ((mlp_param(layer, "W_in"), lambda a, p: a.reshape(p.shape).T),
                               (mlp_param(layer, "b_in"), lambda a, p: a.reshape(-1, 1)),
                               (mlp_param(layer, "W_out"), lambda a, p: a.reshape(p.shape))):
            if name in self.names:
                i = self.names.index(name)
                parts.append(shape_fn(g[self.offsets[i]:self.offsets[i + 1]], self.params[i]) ** 2)
        return np.sqrt(sum(p.sum(1) for p in parts))

    def neuron_index(self, neurons: np.ndarray, layer: int = 0) -> np.ndarray:
        """Flat indices of the given neurons' parameters."""
        idx = []
        for name, kind in ((mlp_param(layer, "W_in"), "col"), (mlp_param(layer, "b_in"), "vec"),
                           (mlp_param(layer, "W_out"), "row")):
            if name not in self.names:
                continue
            i = self.names.index(name)
            p = self.params[i]
            grid = np.arange(p.numel()).reshape(tuple(p.shape)) + self.offsets[i]
            idx.append((grid[:, neurons] if kind == "col" else grid[neurons]).ravel())
        return np.concatenate(idx)


def task_grad(space: GradientSpace, model, prompts, rows: np.ndarray, chunk: int,
              normaliser: float | None = None) -> np.ndarray:
    """[param] gradient of the summed loss of prompts ``rows`` / ``normaliser`` (default: their scored-token count),
    one backward per ``chunk`` prompts: a sum of chunk gradients, so memory is bounded by the chunk, not the task."""
    normaliser = normaliser or max(1, scored_count(prompts.loss_mask, rows, chunk))
    g = np.zeros(space.offsets[-1])
    for c in in_chunks(rows, chunk):
        g += space.grad(summed_loss(model, prompts.tokens[c], prompts.loss_mask[c]) / normaliser)
    return g


class GradInterference(Analyzer):
    name = "grad-interference"
    Config = GradInterferenceConfig
    # 3: tasks from any source, g_r over all of a task's items, task neurons a share of the layer, the batches the
    # trainer saw at the checkpoint's step, signed batch cosines with their standard error
    version = 3
    Result = GradInterferenceResult
    inputs = ("tasks",)
    extra_inputs = ("prompts",)   # the non-task (background) tokens
    requires = "tasks: a run whose manifest has a task mixture, or a task file (--tasks)"
    question = ("How does an update on one task move another task's loss, and how aligned is the gradient of "
                "non-task tokens with the rare task's own?")

    def needs(self, ref) -> Needs:
        return Needs()

    @deterministic()   # bit-reproducible backward passes (the embedding's scatter-add)
    def run(self, unit: Unit, ctx) -> GradInterferenceResult:
        import torch

        (ref,) = unit.refs
        model, tasks = ctx.model(ref), ctx.tasks(ref, split="all")   # g_r over all of a task's instances
        prompts, background = tasks.prompts, self._background(ctx, ref)
        space = GradientSpace(model, tuple(self.config.exclude))
        groups = [(n, rows) for n, rows in prompts.groups() if n != "background"]
        names = [n for n, _ in groups] + (["background"] if background is not None else [])
        with torch.enable_grad():
            g = [task_grad(space, model, prompts, rows, ctx.batch_rows(prompts)) for _, rows in groups]
            if background is not None:
                g.append(task_grad(space, model, background, np.arange(len(background)), ctx.batch_rows(background)))
        g = np.stack(g)                                                                    # [task, param]
        result = self.new_result(unit)
        cos = cosine_matrix(g)
        result.add("cosine", cos, ("task", "task_other"))
        k = max(1, round(self.config.neuron_fraction * model.cfg.d_mlp))
        top = np.stack([np.argsort(-space.neuron_norms(gr), kind="stable")[:k] for gr in g])  # [task, k]
        result.add("task_neurons", top, ("task", "k"))
        neuron_cos = np.array([[_cos(g[j, space.neuron_index(top[r])], g[r, space.neuron_index(top[r])])
                                for r in range(len(g))] for j in range(len(g))])
        result.add("neuron_cosine", neuron_cos, ("task_update", "task_measured"))
        predicted = -self.config.lr * g @ g.T                                                  # [j, r]
        result.add("interference", predicted, ("task_update", "task_measured"))
        s = result.scalars
        s.update(tasks=names, task_neurons_k=k, grad_norm=dict(zip(names, np.linalg.norm(g, axis=1).tolist())))
        if self.config.check_first_order:
            sets = [(prompts, rows) for _, rows in groups]
            if background is not None:
                sets.append((background, np.arange(len(background))))
            actual = self._true_change(model, sets, g, space, ctx.batch_rows(prompts))
            result.add("interference_actual", actual, ("task_update", "task_measured"))
            if np.linalg.norm(actual) > 1e-10:   # a converged model's losses barely move: no ratio to report
                s["first_order_rel_error"] = float(np.linalg.norm(predicted - actual) / np.linalg.norm(actual))
        rare, _ = tasks.roles(self.config.rare_task or None)
        rare = rare or (self.config.rare_task or None)
        if rare in names and len(names) > 1:
            s.update(rare_task=rare, **self._rare_ratios(predicted, names, rare))
        if rare is not None:
            self._split(result, ctx, ref, model, tasks, background, space, g[names.index(rare)],
                        space.neuron_index(top[names.index(rare)]), rare)
            if "background" in names:
                s["rare_background_cosine"] = float(cos[names.index(rare), names.index("background")])
        return result

    def _background(self, ctx, ref):
        """The background rows of the evaluation prompts (at most ``background_prompts``, the first ones), or None
        when the run has no evaluation prompts."""
        if "prompts" not in ctx.available(ref) or not self.config.background_prompts:
            return None
        prompts = ctx.prompts(ref)
        rows = np.flatnonzero(prompts.task_id < 0)[:self.config.background_prompts]
        return prompts.subset(rows) if len(rows) else None

    def _split(self, result, ctx, ref, model, tasks, background, space, g_r, idx, rare: str) -> None:
        """The paper's split g = g_t + g_nt of mixed batches, for the rare task: per batch cos(g, g_r), cos(g_t,
        g_r), cos(g_nt, g_r) on its task neurons' parameters, and cos(g_nt, g_r) on all parameters."""
        import torch

        batches, source = training_batches(ref, self.config, tasks, background, rare)
        if not batches:
            return
        chunk = ctx.batch_rows(batches[0])
        out = {k: np.full(len(batches), np.nan) for k in ("cos_g", "cos_t", "cos_nt", "cos_nt_all")}
        for b, batch in enumerate(batches):
            n_tokens = float(np.asarray(batch.loss_mask).sum())
            mine = batch.task_id == batch.task_names.index(rare)
            with torch.enable_grad():
                g_t = task_grad(space, model, batch, np.flatnonzero(mine), chunk, n_tokens)
                g_nt = task_grad(space, model, batch, np.flatnonzero(~mine), chunk, n_tokens)
            out["cos_g"][b], out["cos_t"][b] = _cos((g_t + g_nt)[idx], g_r[idx]), _cos(g_t[idx], g_r[idx])
            out["cos_nt"][b], out["cos_nt_all"][b] = _cos(g_nt[idx], g_r[idx]), _cos(g_nt, g_r)
        for key, arr in out.items():
            result.add(key, arr, ("batch",))
        nt = out["cos_nt"][np.isfinite(out["cos_nt"])]
        s = result.scalars
        s.update(batch_source=source, n_batches=len(batches), n_batches_with_rare=int(np.isfinite(out["cos_t"]).sum()),
                 rare_nt_cosine_mean=float(nt.mean()) if len(nt) else float("nan"),
                 rare_nt_cosine_sem=float(nt.std(ddof=1) / np.sqrt(len(nt))) if len(nt) > 1 else float("nan"),
                 rare_nt_abs_cosine_mean=float(np.abs(nt).mean()) if len(nt) else float("nan"),
                 # E|cos| of independent random directions in this many dimensions: the floor |cos| sits on
                 rare_nt_abs_cosine_floor=float(np.sqrt(2 / (np.pi * len(idx)))),
                 rare_t_cosine_mean=float(np.nanmean(out["cos_t"])) if np.isfinite(out["cos_t"]).any() else None,
                 rare_g_cosine_mean=float(np.nanmean(out["cos_g"])),
                 rare_nt_cosine_all_params_mean=float(np.nanmean(out["cos_nt_all"])))

    @staticmethod
    def _rare_ratios(predicted: np.ndarray, names: list[str], rare: str) -> dict[str, float]:
        """|interference[j, rare]| / |interference[rare, rare]|: the strongest other task's, and background's."""
        r = names.index(rare)
        own = abs(predicted[r, r])
        if own == 0:
            return {}
        rel = np.abs(predicted[:, r]) / own
        out = {}
        others = [j for j, n in enumerate(names) if j != r and n != "background"]
        if others:
            out["rare_task_interference_ratio"] = float(rel[others].max())
        if "background" in names:
            out["rare_background_interference_ratio"] = float(rel[names.index("background")])
        return out

    def _true_change(self, model, sets: list, g, space, chunk: int) -> np.ndarray:
        """Loss change of every task after one SGD step of size lr on each task, in float64 (a copy)."""
        import copy

        import torch

        m = copy.deepcopy(model).double()
        params = [p for n, p in m.named_parameters() if n in space.names]
        with torch.inference_mode():
            base = np.array([task_loss(m, prompts, rows, chunk) for prompts, rows in sets])
            out = np.zeros((len(sets), len(sets)))
            flat = [p.detach().clone() for p in params]
            for j in range(len(sets)):
                step = torch.as_tensor(g[j], dtype=torch.float64, device=params[0].device)
                for p, p0, a, b in zip(params, flat, space.offsets[:-1], space.offsets[1:]):
                    p.copy_(p0 - self.config.lr * step[a:b].view_as(p0))
                out[j] = [task_loss(m, prompts, rows, chunk) for prompts, rows in sets] - base
        del m
        return out


def training_batches(ref, config: GradInterferenceConfig, tasks, background, rare: str) -> tuple[list, str]:
    """The mixed batches the split is measured on, and where they came from.

    For a run interp's trainer made (a mixture and its ``train`` settings beside the checkpoint): the batches the
    trainer saw just before the checkpoint's step, ``n_batches`` of them or, when the rare task is injected every N
    batches, the last N (so the window holds an injection). Otherwise: ``n_batches`` batches of ``batch_size``
    background rows, each with the rare task's items drawn at its frequency (at least one item a batch when the
    frequency is unknown), seeded by ``seed``."""
    from interp.prompts.prompt_set import PromptSet
    from interp.toys.batches import batches_near

    spec = ref.mixture_spec
    if spec is not None and spec.tasks and tasks.file is None:
        gap = max((t.injection_gap for t in spec.tasks if t.name == rare), default=1)
        batches, steps = batches_near(ref, 0, at_least=max(config.n_batches, gap))
        return batches, f"the trainer's batches at steps {steps[0]}-{steps[-1]}"
    if background is None:
        return [], "none: the run has no background text (--tokens)"
    rng = np.random.default_rng([config.seed, ref.step])
    prompts = tasks.prompts
    rows = np.flatnonzero(prompts.task_id == prompts.task_names.index(rare))
    k = max(1, round(tasks.frequency.get(rare, 0.0) * config.batch_size))
    width = max(prompts.tokens.shape[1], background.tokens.shape[1])
    out = []
    for _ in range(config.n_batches):
        bg = background.subset(rng.choice(len(background), min(config.batch_size, len(background)), replace=False))
        it = prompts.subset(rng.choice(rows, k, replace=True))
        out.append(PromptSet.concat([_pad(bg, width, prompts.task_names), _pad(it, width, prompts.task_names)]))
    return out, f"{config.n_batches} batches of background with the rare task at its frequency (seed {config.seed})"


def _pad(p, width: int, names: tuple[str, ...]):
    """``p`` right-padded to ``width`` positions (nothing scored there), under the task names ``names``."""
    from interp.prompts.prompt_set import PromptSet

    toks = np.zeros((len(p), width), dtype=np.int64)
    mask = np.zeros((len(p), width - 1), dtype=bool)
    toks[:, :p.tokens.shape[1]] = np.asarray(p.tokens)
    mask[:, :p.loss_mask.shape[1]] = np.asarray(p.loss_mask)
    return PromptSet(toks, np.asarray(p.task_id), mask, names)
