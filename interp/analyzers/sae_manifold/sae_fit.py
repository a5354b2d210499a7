"""Fitting sae-lens SAEs on in-memory activations, and measuring how they cover a manifold (Goodfire, arXiv 2604.28119).

``fit_sae`` builds an SAE from sae-lens's own training classes (``StandardTrainingSAE``: ReLU + L1;
``TopKTrainingSAE``) and trains it with a minimal Adam loop over minibatches of the given points, calling the SAE's
own ``training_forward_pass`` (so the loss, including TopK's auxiliary dead-latent loss, is sae-lens's). It skips
``SAETrainer``'s machinery (activation stores, logging, evaluation hooks), which dominates at these sizes
(benchmarks/sae.py). Inputs are centred and scaled to unit mean squared norm first; metrics use the same scaling.

``manifold_metrics`` measures the fit independently of sae-lens's reporting, in float64 numpy, from the codes and
decoder directions alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TWO_PI = 2 * np.pi


@dataclass(frozen=True)
class SAESpec:
    """``kind:d_sae:param``: ``topk:16:2`` (k = 2 active latents) or ``relu:16:0.3`` (L1 coefficient 0.3)."""

    kind: str
    d_sae: int
    param: float

    @classmethod
    def parse(cls, text: str) -> SAESpec:
        from interp.errors import ConfigError

        try:
            kind, d_sae, param = text.split(":")
            spec = cls(kind, int(d_sae), float(param))
        except ValueError:
            raise ConfigError(f"SAE spec {text!r}: expected kind:d_sae:param, e.g. 'topk:16:2' or "
                              f"'relu:16:0.3'") from None
        if spec.kind not in ("topk", "relu") or spec.d_sae < 1 or spec.param <= 0:
            raise ConfigError(f"SAE spec {text!r}: kind must be 'topk' or 'relu', d_sae >= 1, param > 0")
        return spec

    def __str__(self) -> str:
        return f"{self.kind}:{self.d_sae}:{self.param:g}"


def normalise(x: np.ndarray) -> np.ndarray:
    xc = x - x.mean(0)
    return xc / np.sqrt((xc**2).sum(1).mean())


def build_sae(spec: SAESpec, d_in: int, device: str = "cpu"):
    from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig, TopKTrainingSAE, TopKTrainingSAEConfig

    if spec.kind == "topk":
        return TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=spec.d_sae, k=int(spec.param), device=device))
    return StandardTrainingSAE(StandardTrainingSAEConfig(d_in=d_in, d_sae=spec.d_sae, l1_coefficient=spec.param,
                                                         device=device))


def fit_sae(x: np.ndarray, spec: SAESpec, steps: int = 2000, batch_size: int = 512, lr: float = 3e-3,
            seed: int = 0, device: str = "cpu", dead_after: int = 1000):
    """Train an SAE on points x [n, d] (already normalised); returns the sae-lens module in eval mode."""
    import torch
    from sae_lens.saes.sae import TrainStepInput

    torch.manual_seed(seed)
    sae = build_sae(spec, x.shape[1], device)
    data = torch.as_tensor(x, dtype=torch.float32, device=device)
    if spec.kind == "topk":
        _init_from_data(sae, data, seed)
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    coeffs = {k: float(getattr(v, "value", v)) for k, v in sae.get_coefficients().items()}
    track = spec.kind == "topk"                            # only TopK's auxiliary loss uses dead latents
    idle = torch.zeros(spec.d_sae, device=device)          # steps since each latent last fired
    gen = torch.Generator(device="cpu").manual_seed(seed)
    sae.train()
    for step in range(steps):
        batch = data[torch.randint(0, len(data), (min(batch_size, len(data)),), generator=gen).to(device)]
        out = sae.training_forward_pass(TrainStepInput(sae_in=batch, coefficients=coeffs,
                                                       dead_neuron_mask=idle > dead_after if track else None,
                                                       n_training_steps=step,
                                                       is_logging_step=False))
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0, foreach=True)   # as SAETrainer does
        opt.step()
        if track:
            with torch.no_grad():
                idle = torch.where((out.feature_acts > 0).any(0), torch.zeros_like(idle), idle + 1)
    sae.eval()
    return sae


def _init_from_data(sae, data, seed: int) -> None:
    """TopK SAEs only: decoder rows = unit vectors toward random data points, encoder = their transpose, biases 0.
    On a low-dimensional manifold, random directions mostly point off it and never win a TopK race (with random init
    a 64-latent k=1 SAE kept 4 live latents on a circle); data directions start every latent on the manifold. ReLU
    SAEs keep sae-lens's initialisation, which reached a higher explained variance there (0.948 vs 0.941)."""
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed + 1)
    idx = torch.randint(0, len(data), (sae.cfg.d_sae,), generator=g).to(data.device)
    rows = data[idx] + 1e-3 * torch.randn(sae.cfg.d_sae, data.shape[1], generator=g).to(data.device)
    rows = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
    with torch.no_grad():
        sae.W_dec.copy_(rows)
        sae.W_enc.copy_(rows.T)
        sae.b_enc.zero_()
        sae.b_dec.zero_()


def encode(sae, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes [n, d_sae], reconstruction [n, d], decoder rows [d_sae, d]) in float64, the rows taken from the SAE's
    own ``decode`` (``decode(e_j) - decode(0)``), so that ``recon = codes @ rows + decoder_offset(sae)`` whatever the
    architecture does inside (TopK divides codes by the decoder norms; their directions are ``W_dec``'s)."""
    import torch

    with torch.no_grad():
        t = torch.as_tensor(x, dtype=torch.float32, device=sae.W_dec.device)
        codes = sae.encode(t)
        recon = sae.decode(codes)
        eye = torch.eye(sae.cfg.d_sae, dtype=sae.W_dec.dtype, device=sae.W_dec.device)
        rows = sae.decode(eye) - sae.decode(torch.zeros_like(eye[:1]))
    return codes.double().cpu().numpy(), recon.double().cpu().numpy(), rows.double().cpu().numpy()


def decoder_offset(sae) -> np.ndarray:
    """[d] float64: the SAE's output when no latent fires (sae-lens's ``b_dec``, through its own ``decode``)."""
    import torch

    with torch.no_grad():
        return sae.decode(torch.zeros(1, sae.cfg.d_sae, dtype=sae.W_dec.dtype, device=sae.W_dec.device))[0] \
            .double().cpu().numpy()


def rayleigh_p(angles: np.ndarray) -> float:
    """p-value of the Rayleigh test of circular uniformity (Zar's approximation); 1.0 for fewer than 2 angles."""
    n = len(angles)
    if n < 2:
        return 1.0
    r = np.abs(np.exp(1j * angles).sum())
    return float(min(1.0, np.exp(np.sqrt(1 + 4 * n + 4 * (n * n - r * r)) - (1 + 2 * n))))


def receptive_fields(codes: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """[3, d_sae]: activation-weighted circular mean, circular width (sqrt(-2 ln R), radians), and peak theta."""
    w = codes.sum(0)
    z = (codes * np.exp(1j * theta)[:, None]).sum(0)
    r = np.abs(z) / np.where(w > 0, w, 1)
    centre = np.mod(np.angle(z), TWO_PI)
    width = np.sqrt(-2 * np.log(np.clip(r, 1e-12, 1.0)))
    peak = theta[codes.argmax(0)]
    return np.stack([np.where(w > 0, centre, np.nan), np.where(w > 0, width, np.nan), np.where(w > 0, peak, np.nan)])


@dataclass(frozen=True)
class ManifoldFit:
    """``metrics``: JSON scalars (see ``manifold_metrics``); ``on_manifold``: [d_sae] which latents count as on the
    manifold; ``receptive_fields``: [3, n_on] their centre, width and peak over theta; ``in_plane``: [d_sae] the
    share of each latent's write inside the manifold's subspace."""

    metrics: dict
    on_manifold: np.ndarray
    receptive_fields: np.ndarray
    in_plane: np.ndarray


def manifold_metrics(x: np.ndarray, codes: np.ndarray, recon: np.ndarray, w_dec: np.ndarray, theta: np.ndarray,
                     basis: np.ndarray, min_frac: float = 0.01, in_plane: float = 0.5,
                     offset: np.ndarray | None = None) -> ManifoldFit:
    """How an SAE covers one manifold. ``basis`` [d, m]: the manifold's subspace; ``offset`` [d]: the SAE's output
    when no latent fires (``decoder_offset``), None to take it at the data mean.

    - latents on the manifold: fire on >= ``min_frac`` of its points and keep >= ``in_plane`` of the squared norm of
      what they write inside the subspace. What latent j writes, seen from the data mean, is
      ``offset + a_j w_j - mean(x)`` (a_j: its mean activation where it fires), not ``w_j`` alone: a TopK SAE with
      k = 1 on clustered points moves b_dec far from the data's centre (norm 2.1 against an RMS norm of 1 on the
      bundled modular-addition model, seed 0) and each latent becomes a ray from b_dec to its cluster, so ``w_j``
      carries b_dec's own off-plane part; measured by ``w_j`` alone, latents firing on arcs of one Fourier circle were
      counted as latents of another (analyses/sae_tiling.py). Ours;
    - subspace capture: variance of the manifold component of x (x_c B B^T) explained by the span of those latents'
      decoder directions; principal angles between that span and the subspace (largest reported, degrees);
    - coverage: fraction of points on which at least one on-manifold latent is active;
    - receptive fields of the on-manifold latents over theta, and a Rayleigh test that their centres are uniform.
    """
    from scipy.linalg import subspace_angles

    xc = x - x.mean(0)
    ev = 1 - ((x - recon) ** 2).sum() / (xc**2).sum()
    active = codes > 0
    dirs = w_dec / np.maximum(np.linalg.norm(w_dec, axis=1, keepdims=True), 1e-30)
    writes = dirs if offset is None else (offset - x.mean(0) + (codes.sum(0) / np.maximum(active.sum(0), 1))[:, None]
                                          * w_dec)
    inside = ((writes @ basis) ** 2).sum(1) / np.maximum((writes**2).sum(1), 1e-300)
    on = (active.mean(0) >= min_frac) & (inside >= in_plane)
    manifold = xc @ basis @ basis.T
    if on.any():
        q, _ = np.linalg.qr(dirs[on].T)
        span = q[:, : min(on.sum(), x.shape[1])]
        capture = float(((manifold @ span) ** 2).sum() / max((manifold**2).sum(), 1e-300))
        angle = float(np.degrees(subspace_angles(basis, span).max()))
    else:
        capture, angle = 0.0, 90.0
    rf = receptive_fields(codes[:, on], theta)
    m = basis.shape[1]
    out = {"explained_variance": float(ev), "l0": float(active.sum(1).mean()),
           "latents_on_manifold": int(on.sum()), "subspace_capture": capture, "max_principal_angle": angle,
           "coverage": float(active[:, on].any(1).mean()) if on.any() else 0.0,
           # how many of those latents a point's reconstruction combines (median over the points where any fires)
           "co_active": float(np.median(active[:, on].sum(1)[active[:, on].any(1)])) if on.any() else 0.0,
           "median_rf_width": float(np.nanmedian(rf[1])) if on.any() else float("nan"),
           "centre_uniformity_p": rayleigh_p(rf[0])}
    out["fit_kind"] = classify(out, m)
    return ManifoldFit(out, on, rf, inside)


def classify(m: dict, dim: int) -> str:
    """What the SAE does with the manifold, decided from what it can do:

    - ``subspace``: at most 2 x dim latents on the manifold, capturing >= 90% of its variance, and combined: a
      point's reconstruction uses at least ``dim`` of them at once (median over the points; a TopK k = 1 SAE never
      can, so it never captures a subspace however few latents it spends);
    - ``coarse tiling``: at most 2 x dim latents, one (fewer than ``dim``) at a time, together covering >= 90% of
      the points: a few arcs, each its own latent;
    - ``tiling``: more than 2 x dim latents, covering >= 90% of the points, each local (median receptive-field width
      <= pi/2) and with centres spread over theta (a Rayleigh test does not reject uniformity at 1%);
    - ``dilution``: latents on the manifold, but none of the above (broad, redundant or bunched latents);
    - ``absent``: no latent concentrates on the manifold's subspace (the SAE spends nothing on it)."""
    n = m["latents_on_manifold"]
    if n == 0:
        return "absent"
    few, combined = n <= 2 * dim, m.get("co_active", dim) >= dim
    if few and combined and m["subspace_capture"] >= 0.9:
        return "subspace"
    if few and not combined and m["coverage"] >= 0.9:
        return "coarse tiling"
    if not few and m["coverage"] >= 0.9 and m["median_rf_width"] <= np.pi / 2 and m["centre_uniformity_p"] >= 0.01:
        return "tiling"
    return "dilution"


def binned_response(codes: np.ndarray, theta: np.ndarray, n_bins: int = 48) -> np.ndarray:
    """[bin, latent] mean activation of each latent in equal theta bins (for receptive-field plots)."""
    b = np.minimum((theta / TWO_PI * n_bins).astype(int), n_bins - 1)
    sums = np.zeros((n_bins, codes.shape[1]))
    np.add.at(sums, b, codes)
    return sums / np.maximum(np.bincount(b, minlength=n_bins), 1)[:, None]
