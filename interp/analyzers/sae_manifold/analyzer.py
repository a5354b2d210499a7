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


@dataclass(frozen=True)
class SAEManifoldConfig(Options):
    # where the circles are read: a hook, or "auto": the residual stream after each block, the one whose circle fit
    # is best (a 1-layer model has one)
    hook: str = "auto"
    # widths below p = 59: the answers are 59 clusters, and TopK k=1 SAEs of 64 latents give single-answer latents,
    # some dead or off the circle (analyses/sae_tiling.py); 32 shows the finest tiling at less cost
    saes: tuple[str, ...] = ("topk:2:2", "topk:16:1", "topk:32:1", "relu:32:0.3")
    train_steps: int = option(400, ge=1)
    lr: float = option(3e-3, gt=0)
    max_freqs: int = option(3, ge=1)
    steps: Literal["last", "all"] = "last"   # the last step of each seed, or every step
    views: bool = True           # 2-D PCA view of the activations
    umap: bool = False           # also a UMAP view (off by default: its JIT costs about 20 s per process)
    seed: int = option(0, ge=0)
    # tokens of text (the evaluation prompts) mixed with a concepts file's points for the SAEs to fit: dilution only
    # shows when an SAE must also represent everything else (0: the concept's points alone)
    text_tokens: int = option(4096, ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        from interp.analyzers.sae_manifold.sae_fit import SAESpec
        from interp.trust.paths import safe_hook

        if self.hook != "auto":
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
    version = 2   # circles of any cyclic concept; fit kinds from what an SAE can combine
    inputs = ("concepts",)
    extra_inputs = ("prompts",)   # text the SAEs also fit, with a concepts file
    requires = ("a cyclic concept: a concepts file (--concepts), or a run with a modular_addition task (its Fourier "
                "circles)")
    question = ("Do sparse autoencoders capture a model's circles (days, months, the Fourier circles of modular "
                "addition) as a subspace, tile them with local latents, or dilute them over many overlapping ones?")

    def hooks(self, n_layers: int) -> tuple[str, ...]:
        return (self.config.hook,) if self.config.hook != "auto" else tuple(act_name("resid_post", layer)
                                                                             for layer in range(n_layers))

    def needs(self, ref) -> Needs:
        return Needs(hooks=self.hooks(ref.n_layers), on="concepts")

    def select(self, refs: list) -> list:
        """The last step per (run, seed) unless ``steps='all'``."""
        if self.config.steps == "all":
            return refs
        last = {}
        for r in refs:
            if r.step >= last.get((r.run, r.seed), r).step:
                last[(r.run, r.seed)] = r
        return sorted(last.values(), key=lambda r: (r.run, r.seed))

    def run(self, unit: Unit, ctx) -> SAEManifoldResult:
        from interp.analyzers.sae_manifold import sae_fit as F

        (ref,) = unit.refs
        cs, model = ctx.concepts(ref), ctx.model(ref)
        hook, circles, fit_r2 = self._circles(ctx, ref, cs, model)
        x_concepts = np.concatenate([c["points"] for c in circles.values()])
        text = self._text(ctx, ref, model, hook) if cs.file is not None else np.zeros((0, x_concepts.shape[1]))
        x = F.normalise(np.concatenate([x_concepts, text]).astype(np.float64))
        offsets = np.cumsum([0] + [len(c["points"]) for c in circles.values()])
        result = self.new_result(unit)
        result.add("hook_fit", fit_r2, ("hook",))
        fits = []
        for i, text_spec in enumerate(self.config.saes):
            sae = F.fit_sae(x, F.SAESpec.parse(text_spec), steps=self.config.train_steps, lr=self.config.lr,
                            seed=self.config.seed, device=ctx.device)
            codes, recon, w_dec = F.encode(sae, x)
            offset = F.decoder_offset(sae)
            rfs, binned, inside = [], [], []
            for j, (name, c) in enumerate(circles.items()):
                rows = slice(offsets[j], offsets[j + 1])
                xc = x[rows]
                for k, m in zip(c["freqs"], c["manifolds"]):
                    basis = np.linalg.qr(_circle_basis(xc, m.theta))[0]
                    fit = F.manifold_metrics(xc, codes[rows], recon[rows], w_dec, m.theta, basis, offset=offset)
                    inside.append(fit.in_plane)
                    rfs.append(F.receptive_fields(codes[rows], m.theta))
                    binned.append(F.binned_response(codes[rows], m.theta))
                    fits.append({"sae": text_spec, "kind": text_spec.split(":")[0],
                                 "d_sae": int(text_spec.split(":")[1]), "concept": name, "frequency": k,
                                 "sae_k": F.SAESpec.parse(text_spec).param if text_spec.startswith("topk") else None,
                                 **fit.metrics})
            result.add(f"receptive_field_{i}", np.stack(rfs), ("circle", "stat", "latent"))
            result.add(f"binned_response_{i}", np.stack(binned), ("circle", "theta_bin", "latent"))
            result.add(f"in_plane_{i}", np.stack(inside), ("circle", "latent"))
            first = slice(offsets[0], offsets[1])
            result.add(f"dominant_latent_{i}", np.where(codes[first].max(1) > 0, codes[first].argmax(1), -1),
                       ("prompt",))
        self._finish(result, circles, x[:offsets[1]], hook, cs, len(text), fits)
        return result

    def _finish(self, result, circles: dict, x_first: np.ndarray, hook: str, cs, n_text: int, fits: list) -> None:
        first = next(iter(circles.values()))
        result.add("theta", np.stack([m.theta for m in first["manifolds"]]), ("key_frequency", "prompt"))
        if first.get("spectrum") is not None:
            result.add("embedding_spectrum", first["spectrum"], ("frequency",))
        if self.config.views:
            result.add("pca", pca2(x_first), ("prompt", "component"))
        if self.config.umap:
            result.add("umap", umap2(x_first, self.config.seed), ("prompt", "component"))
        result.scalars.update(key_frequencies=first["freqs"], circle_shares=first["shares"],
                              p=int(first["period"]), n_points=int(len(x_first)), fits=fits, hook=hook,
                              concepts={n: {"period": int(c["period"]), "frequencies": c["freqs"],
                                            "circle_r2": c["r2"], "n_points": len(c["points"])}
                                        for n, c in circles.items()},
                              concept_source=cs.source, text_points=n_text)

    def _circles(self, ctx, ref, cs, model) -> tuple[str, dict, np.ndarray]:
        """(the hook read, {concept: its points, frequencies, circles, shares}, [hook] best circle fit). Per hook,
        each concept's activations at its positions; the hook with the best mean circle fit is kept. A modular
        task's frequencies come from its embedding's spectrum (the model's key frequencies); a concepts file's from
        the labels (``label_frequencies``)."""
        from interp.maths.manifolds import circle_r2, fourier_circle, key_frequencies, label_frequencies

        hooks = self.hooks(model.cfg.n_layers)
        per_hook, score = [], []
        for hook in hooks:
            acts = concept_points(ctx, ref, cs, hook)                                # [row, d_model]
            found = {}
            for name in cs.names:
                rows = cs.rows(name)
                pts, value, period = acts[rows].astype(np.float64), cs.value[rows], int(cs.period[rows][0])
                spectrum = None
                if cs.operands is not None and name in cs.operands:
                    w_e = model.W_E.detach().double().cpu().numpy()[cs.operands[name]]
                    freqs, spectrum = key_frequencies(w_e, self.config.max_freqs)
                    r2 = [circle_r2(pts, value, k, period) for k in freqs]
                else:
                    freqs, all_r2 = label_frequencies(pts, value, period, self.config.max_freqs)
                    r2 = [float(all_r2[k - 1]) for k in freqs]
                found[name] = dict(points=pts, value=value, period=period, freqs=freqs, r2=r2, spectrum=spectrum)
            per_hook.append(found)
            score.append(float(np.mean([max(c["r2"]) for c in found.values()])))
        best = int(np.argmax(score))
        circles = per_hook[best]
        for c in circles.values():
            from interp.analyzers.sae_manifold.sae_fit import normalise

            pts = normalise(c["points"])
            ms = [fourier_circle(pts, c["value"], k, c["period"]) for k in c["freqs"]]
            shares = [float(((pts @ m.basis) ** 2).sum() / (pts**2).sum()) for m in ms]
            # strongest at this hook first (the figures show the first): the embedding's order can differ (seed 1 of
            # the bundled modadd: k=22 leads the embedding, k=28 carries more of resid_post, and its latents follow)
            order = np.argsort(shares, kind="stable")[::-1]
            c.update(freqs=[c["freqs"][i] for i in order], r2=[c["r2"][i] for i in order],
                     manifolds=[ms[i] for i in order], shares=[shares[i] for i in order])
        return hooks[best], circles, np.array(score)

    def _text(self, ctx, ref, model, hook: str) -> np.ndarray:
        """[token, d_model] activations at ``hook`` on the first ``text_tokens`` counted text tokens (no first
        positions, no special tokens), run here rather than cached: a sample, not the whole corpus."""
        import torch

        if not self.config.text_tokens or "prompts" not in ctx.available(ref):
            return np.zeros((0, model.cfg.d_model))
        prompts = ctx.prompts(ref)
        rows = np.flatnonzero(prompts.task_id < 0)
        out, n = [], 0
        per = ctx.batch_rows(prompts)
        for s in range(0, len(rows), per):
            part = rows[s:s + per]
            toks = np.asarray(prompts.tokens[part], dtype=np.int64)
            with torch.inference_mode():
                _, cache = model.run_with_cache(torch.as_tensor(toks, device=ctx.device), names_filter=hook)
            acts = cache[hook].float().cpu().numpy()
            keep = prompts.statistics_mask(toks)
            out.append(acts[keep])
            n += int(keep.sum())
            if n >= self.config.text_tokens:
                break
        return np.concatenate(out)[:self.config.text_tokens] if out else np.zeros((0, model.cfg.d_model))


def concept_points(ctx, ref, cs, hook: str) -> np.ndarray:
    """[row, d] the cached activation of every concept row at its own position."""
    out, start = [], 0
    acts = ctx.acts(ref, hook, on="concepts")
    for block in acts.blocks(acts.rows_for(16384)):
        pos = cs.position[start:start + len(block)]
        out.append(block[np.arange(len(block)), pos])
        start += len(block)
    return np.concatenate(out)


def _circle_basis(points: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """[d, 2]: the least-squares directions u_cos, u_sin of ``points ~ mean + cos(theta) u_cos + sin(theta) u_sin``."""
    design = np.stack([np.cos(theta), np.sin(theta)], 1)
    coef, *_ = np.linalg.lstsq(design, points - points.mean(0), rcond=None)
    return coef.T


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
