"""``grad-interference``: how much an update for one task moves another task's loss (Huang et al., arXiv 2605.29548,
section 4).

The method, the choices that are ours and the caveats: ``method.md`` beside this module.

Each task's gradient takes one backward pass per task, the floor: measured on a 2-core CPU, a loop of
``autograd.grad`` per task was as fast as ``vmap(grad)`` over tasks (38 vs 40 ms for 4 x 256 examples), and
per-example vmap cost about 4x more. A task with more than ``--batch-size`` prompts takes one backward per batch,
summed, so memory is bounded by the batch and not by the task. The first-order check takes its SGD step on a float64
copy of the model.
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

# abs_curve and step_weighted_mean are public here too (tests and analyses/ import them from this module)
from interp.results import Result
from interp.runner.context import Needs


@dataclass(frozen=True)
class GradInterferenceConfig(Options):
    lr: float = option(1e-4, gt=0)
    k_neurons: int = option(8, ge=1)
    n_batches: int = option(4, ge=1)
    batch_size: int = option(256, ge=1)
    seed: int = option(10_000, ge=0)      # of the mixed batches (a stream seed no training run uses)
    check_first_order: bool = True
    exclude: tuple[str, ...] = ()


class GradInterferenceResult(Result):
    @property
    def tasks(self) -> list[str]:
        return list(self.scalars["tasks"])


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


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
    version = 2   # task losses (the first-order check) summed in float64 per prompt
    Result = GradInterferenceResult
    requires = "runs whose manifest has a task mixture with tasks (it compares the tasks' gradients)"

    def select(self, refs: list) -> list:
        return [r for r in refs if r.mixture_spec is not None and r.mixture_spec.tasks]
    question = ("How does an update on one task move another task's loss, and how aligned is the gradient of "
                "non-task tokens with the rare task's own?")

    def needs(self, ref) -> Needs:
        return Needs()

    @deterministic()   # bit-reproducible backward passes (the embedding's scatter-add)
    def run(self, unit: Unit, ctx) -> GradInterferenceResult:
        import torch

        (ref,) = unit.refs
        model, prompts = ctx.model(ref), ctx.prompts(ref)
        space = GradientSpace(model, tuple(self.config.exclude))
        groups = prompts.groups()
        names = [n for n, _ in groups]
        with torch.enable_grad():
            chunk = ctx.batch_rows(prompts)
            g = np.stack([task_grad(space, model, prompts, rows, chunk) for _, rows in groups])  # [task, param]
        result = self.new_result(unit)
        cos = cosine_matrix(g)
        result.add("cosine", cos, ("task", "task_other"))
        k = min(self.config.k_neurons, model.cfg.d_mlp)
        top = np.stack([np.argsort(-space.neuron_norms(gr), kind="stable")[:k] for gr in g])  # [task, k]
        result.add("task_neurons", top, ("task", "k"))
        neuron_cos = np.array([[_cos(g[j, space.neuron_index(top[r])], g[r, space.neuron_index(top[r])])
                                for r in range(len(g))] for j in range(len(g))])
        result.add("neuron_cosine", neuron_cos, ("task_update", "task_measured"))
        predicted = -self.config.lr * g @ g.T                                                  # [j, r]
        result.add("interference", predicted, ("task_update", "task_measured"))
        s = result.scalars
        s.update(tasks=names, grad_norm=dict(zip(names, np.linalg.norm(g, axis=1).tolist())))
        if self.config.check_first_order:
            actual = self._true_change(model, prompts, [rows for _, rows in groups], g, space, ctx.batch_rows(prompts))
            result.add("interference_actual", actual, ("task_update", "task_measured"))
            if np.linalg.norm(actual) > 1e-10:   # a converged model's losses barely move: no ratio to report
                s["first_order_rel_error"] = float(np.linalg.norm(predicted - actual) / np.linalg.norm(actual))
        spec = ref.mixture_spec
        rare = min(spec.tasks, key=lambda t: t.frequency).name if spec is not None and len(spec.tasks) else None
        if rare in names and len(names) > 1:
            s.update(rare_task=rare, **self._rare_ratios(predicted, names, rare))
        if spec is not None and spec.n_background and len(spec.tasks):
            split = self._batch_split(model, spec, space, {n: g[i] for i, n in enumerate(names)},
                                      {n: space.neuron_index(top[i]) for i, n in enumerate(names)},
                                      ctx.batch_rows(prompts))
            for key, arr in split.items():
                result.add(key, arr, ("task", "batch"))
            s["split_tasks"] = [t.name for t in spec.tasks]
            r = s["split_tasks"].index(rare)
            s.update(rare_nt_cosine_mean=float(split["cos_nt"][r].mean()),
                     rare_nt_cosine_std=float(split["cos_nt"][r].std()),
                     rare_t_cosine_mean=float(split["cos_t"][r].mean()),
                     rare_g_cosine_mean=float(split["cos_g"][r].mean()),
                     rare_nt_cosine_all_params_mean=float(split["cos_nt_all"][r].mean()))
            if "background" in names and rare in names:
                s["rare_background_cosine"] = float(cos[names.index(rare), names.index("background")])
        return result

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

    def _true_change(self, model, prompts, groups: list[np.ndarray], g, space, chunk: int) -> np.ndarray:
        """Loss change of every task after one SGD step of size lr on each task, in float64 (a copy)."""
        import copy

        import torch

        m = copy.deepcopy(model).double()
        params = [p for n, p in m.named_parameters() if n in space.names]
        with torch.inference_mode():
            base = np.array([task_loss(m, prompts, rows, chunk) for rows in groups])
            out = np.zeros((len(groups), len(groups)))
            flat = [p.detach().clone() for p in params]
            for j in range(len(groups)):
                step = torch.as_tensor(g[j], dtype=torch.float64, device=params[0].device)
                for p, p0, a, b in zip(params, flat, space.offsets[:-1], space.offsets[1:]):
                    p.copy_(p0 - self.config.lr * step[a:b].view_as(p0))
                out[j] = [task_loss(m, prompts, rows, chunk) for rows in groups] - base
        del m
        return out

    def _batch_split(self, model, spec, space, ref_grads: dict[str, np.ndarray],
                     neuron_idx: dict[str, np.ndarray], chunk: int) -> dict[str, np.ndarray]:
        """cos(g, g_r), cos(g_t, g_r), cos(g_nt, g_r) per task r and batch ([task, batch] each), on task r's task
        neurons' parameters, and ``cos_nt_all`` on all parameters."""
        import torch

        from interp.toys.tasks import MixtureStream

        stream = MixtureStream(spec, self.config.batch_size, self.config.seed)
        n_t = len(stream.task_names)
        out = {k: np.zeros((n_t, self.config.n_batches)) for k in ("cos_g", "cos_t", "cos_nt", "cos_nt_all")}
        for b in range(self.config.n_batches):
            batch = stream.batch(b)
            n_tokens = float(batch.loss_mask.sum())
            with torch.enable_grad():
                parts = [task_grad(space, model, batch, np.flatnonzero(batch.task_id == t), chunk, n_tokens)
                         for t in range(-1, n_t)]                                  # background first, then tasks
            total = np.sum(parts, axis=0)
            for t, name in enumerate(stream.task_names):
                gr = ref_grads.get(name)
                if gr is None:
                    continue
                g_t, idx = parts[t + 1], neuron_idx[name]
                out["cos_g"][t, b], out["cos_t"][t, b], out["cos_nt"][t, b] = (
                    _cos(total[idx], gr[idx]), _cos(g_t[idx], gr[idx]), _cos(total[idx] - g_t[idx], gr[idx]))
                out["cos_nt_all"][t, b] = _cos(total - g_t, gr)
        return out
