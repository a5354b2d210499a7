"""``sae-manifold``: do SAEs capture the curved manifolds a model uses, tile them, or dilute them? (Goodfire, arXiv
2604.28119; Michaud et al. on tiling)

The method, the choices that are ours and the caveats: ``method.md`` beside this module.

The metrics and the fit-kind rule are in ``interp.analyzers.sae_manifold.sae_fit``; the circles in
``interp.maths.manifolds``.

Cost: SAE fitting dominates, so by default only the last step of each seed is analysed (``steps="last"``;
``"all"`` for every step). A PCA view of the activations is stored for every analysed checkpoint (``views``), and
a UMAP view with ``umap=true`` (off by default because its JIT compilation costs ~20 s per process; on at most
2,048 points, where it uses exact neighbours).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from interp.analyzers.base import Analyzer, Unit
from interp.checkpoints.hooks import act_name
from interp.config import Options, option
from interp.results import Result
from interp.runner.context import Needs
from interp.toys.tasks import LABEL_POS, find_task


@dataclass(frozen=True)
class SAEManifoldConfig(Options):
    hook: str = act_name("resid_post", 0)
    # widths below p = 59: the answers are 59 clusters, and TopK k=1 SAEs of 64 latents give single-answer latents,
    # some dead or off the circle (analyses/sae_tiling.py); 32 shows the finest tiling at less cost
    saes: tuple[str, ...] = ("topk:2:2", "topk:16:1", "topk:32:1", "relu:32:0.3")
    train_steps: int = option(600, ge=1)
    lr: float = option(3e-3, gt=0)
    max_freqs: int = option(3, ge=1)
    steps: Literal["last", "all"] = "last"   # the last step of each seed, or every step
    views: bool = True           # 2-D PCA view of the activations
    umap: bool = False           # also a UMAP view (off by default: its JIT costs about 20 s per process)
    seed: int = option(0, ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        from interp.analyzers.sae_manifold.sae_fit import SAESpec
        from interp.trust.paths import safe_hook

        safe_hook(self.hook)   # it becomes a cache file name

        for s in self.saes:   # a bad spec fails here, before any activation is cached
            SAESpec.parse(s)


class SAEManifoldResult(Result):
    # everything read off a trained SAE: another thread count trains another SAE (the fits agreed on the bundled
    # series between 1 and 2 threads, but nothing promises it)
    SAMPLED = ("fits", "binned_response_*", "dominant_latent_*", "in_plane_*", "receptive_field_*")
    def fits(self) -> list[dict]:
        """One dict per (SAE, key frequency): the metrics and ``fit_kind``."""
        return list(self.scalars["fits"])


class SAEManifold(Analyzer):
    name = "sae-manifold"
    Config = SAEManifoldConfig
    Result = SAEManifoldResult
    requires = "runs with a modular_addition task in their mixture (it fits SAEs to that task's Fourier circles)"
    question = ("Do sparse autoencoders capture a model's Fourier circles as a subspace, tile them with local "
                "latents, or dilute them over many overlapping ones?")

    def needs(self, ref) -> Needs:
        return Needs(hooks=(self.config.hook,))

    def select(self, refs: list) -> list:
        """Modular-addition runs only; their last step per seed unless ``steps='all'``."""
        refs = [r for r in refs if find_task(r.mixture_spec, "modular_addition") is not None]
        if self.config.steps == "all":
            return refs
        last = {}
        for r in refs:
            if r.step >= last.get((r.run, r.seed), r).step:
                last[(r.run, r.seed)] = r
        return sorted(last.values(), key=lambda r: (r.run, r.seed))

    def run(self, unit: Unit, ctx) -> SAEManifoldResult:
        from interp.analyzers.sae_manifold import sae_fit as F
        from interp.maths.manifolds import fourier_circle, key_frequencies
        from interp.toys.tasks import build_tasks

        (ref,) = unit.refs
        spec = ref.mixture_spec
        task = build_tasks(spec)[find_task(spec, "modular_addition").name]
        prompts = ctx.prompts(ref)
        sel = prompts.task_id == prompts.task_names.index(task.name)
        acts = np.concatenate([c[:, LABEL_POS] for c in ctx.acts(ref, self.config.hook).chunks()])[sel]
        x = F.normalise(acts.astype(np.float64))
        rank = {int(t): i for i, t in enumerate(task.operand_tokens)}
        p = len(task.operand_tokens)
        toks = prompts.tokens[sel]
        c = np.array([(rank[int(a)] + rank[int(b)]) % p for a, b in toks[:, :2]])
        w_e = ctx.model(ref).W_E.detach().double().cpu().numpy()[task.operand_tokens]
        freqs, spectrum = key_frequencies(w_e, self.config.max_freqs)
        circles = [fourier_circle(x, c, k, p) for k in freqs]
        # strongest at this hook first (the figures show the first): the embedding's order can differ (seed 1 of the
        # bundled modadd: k=22 leads the embedding, k=28 carries more of resid_post, and its latents follow k=28)
        shares = [float(((x @ m.basis) ** 2).sum() / (x**2).sum()) for m in circles]
        order = np.argsort(shares, kind="stable")[::-1]
        freqs, circles, shares = [freqs[i] for i in order], [circles[i] for i in order], [shares[i] for i in order]

        result = self.new_result(unit)
        result.add("embedding_spectrum", spectrum, ("frequency",))
        result.add("theta", np.stack([m.theta for m in circles]), ("key_frequency", "prompt"))
        fits = []
        for i, text in enumerate(self.config.saes):
            sae = F.fit_sae(x, F.SAESpec.parse(text), steps=self.config.train_steps, lr=self.config.lr,
                          seed=self.config.seed, device=ctx.device)
            codes, recon, w_dec = F.encode(sae, x)
            offset = F.decoder_offset(sae)
            rfs, binned, inside = [], [], []
            for k, m in zip(freqs, circles):
                fit = F.manifold_metrics(x, codes, recon, w_dec, m.theta, m.basis, offset=offset)
                met = fit.metrics
                inside.append(fit.in_plane)
                rfs.append(F.receptive_fields(codes, m.theta))
                binned.append(F.binned_response(codes, m.theta))
                fits.append({"sae": text, "kind": text.split(":")[0], "d_sae": int(text.split(":")[1]),
                             "frequency": k, **met})
            result.add(f"receptive_field_{i}", np.stack(rfs), ("key_frequency", "stat", "latent"))
            result.add(f"binned_response_{i}", np.stack(binned), ("key_frequency", "theta_bin", "latent"))
            result.add(f"in_plane_{i}", np.stack(inside), ("key_frequency", "latent"))
            result.add(f"dominant_latent_{i}", np.where(codes.max(1) > 0, codes.argmax(1), -1), ("prompt",))
        if self.config.views:
            result.add("pca", pca2(x), ("prompt", "component"))
        if self.config.umap:
            result.add("umap", umap2(x, self.config.seed), ("prompt", "component"))
        result.scalars.update(key_frequencies=freqs, circle_shares=shares, p=p, n_points=int(len(x)), fits=fits)
        return result


def pca2(x: np.ndarray) -> np.ndarray:
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    return xc @ vt[:2].T


def umap2(x: np.ndarray, seed: int, max_points: int = 2048) -> np.ndarray:
    """UMAP embedding [n, 2] (NaN rows beyond ``max_points``, which are left out to keep exact neighbours)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap

        out = np.full((len(x), 2), np.nan)
        idx = np.random.default_rng(seed).permutation(len(x))[:max_points]
        out[idx] = umap.UMAP(n_components=2, random_state=seed, n_neighbors=15).fit_transform(x[idx])
    return out
