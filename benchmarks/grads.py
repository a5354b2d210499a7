"""``grad-interference`` time per checkpoint vs the forward+backward passes it cannot avoid.

    python benchmarks/grads.py

On the bundled wide model (last step, seed 0), best of 8 interleaved repetitions: (a) the analyzer's ``run`` with
``check_first_order=False`` (the optional SGD check is extra work by design), (b) the bare passes over the same
batches: one forward + ``loss.backward()`` per task batch (each task and the background) and per part of each mixed
batch. Prints (a)/(b) at two ``--batch-size`` values (the analyzer's backward chunk); target <= 1.3.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(batch_size: int) -> None:
    from interp.activations.cache import CacheSettings
    from interp.analyzers.base import Unit
    from interp.analyzers.grad_interference.analyzer import GradInterference, GradInterferenceConfig, summed_loss
    from interp.api import load_series
    from interp.prompts.source import PromptSource
    from interp.runner.context import Context, ContextSettings
    from interp.toys.tasks import MixtureStream

    ref = max(load_series(None).refs(run="wide", seed=0), key=lambda r: r.step)
    cfg = GradInterferenceConfig(check_first_order=False)
    cache = CacheSettings(Path("/tmp/interp-bench-grads"), batch_size=batch_size)
    ctx = Context(ContextSettings(cache, "cpu", PromptSource()))
    analyzer = GradInterference(cfg)
    model, prompts = ctx.model(ref), ctx.prompts(ref)
    stream = MixtureStream(ref.mixture_spec, cfg.batch_size, cfg.seed)
    batches = [(prompts.tokens[prompts.task_id == t], prompts.loss_mask[prompts.task_id == t])
               for t in range(-1, len(prompts.task_names))]
    for b in range(cfg.n_batches):
        mb = stream.batch(b)
        batches += [(mb.tokens[mb.task_id == t], mb.loss_mask[mb.task_id == t]) for t in range(-1, len(mb.task_names))]

    def bare():
        for toks, mask in batches:
            if len(toks):
                model.zero_grad(set_to_none=True)
                (summed_loss(model, toks, mask) / max(1, int(mask.sum()))).backward()
        model.zero_grad(set_to_none=True)

    def full():
        analyzer.run(Unit(analyzer.name, (ref,)), ctx)

    full(), bare()
    a, b = [], []
    for _ in range(8):
        t = time.perf_counter()
        full()
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        bare()
        b.append(time.perf_counter() - t)
    print(f"threads {torch.get_num_threads()}, {len(batches)} task batches")
    print(f"analyzer per checkpoint {min(a) * 1e3:.1f} ms; bare forward+backward passes {min(b) * 1e3:.1f} ms")
    print(f"--batch-size {batch_size}: ratio {min(a) / min(b):.2f}  (target <= 1.3)")


if __name__ == "__main__":
    # the analyzer takes one backward per --batch-size prompts (memory bounded by the batch, not the task): at the
    # default 512 the bundle's 576-prompt rare set needs two, which on a model this small is pure overhead
    for bs in (512, 1024):
        main(bs)
