"""Loading a GPT-2-small-shaped Hugging Face folder (124M parameters, random weights, fp32 safetensors): interp's
``load_checkpoint`` against ``transformers``' ``from_pretrained`` of the same folder, in the same run.

Each measurement runs in a fresh process (so neither sees the other's page cache state or allocations) after the
libraries are imported; the clock and the memory count stop once the model has produced logits for one batch
(``from_pretrained`` maps the file lazily, so "loaded" means "has computed with every weight"). Memory is the peak
resident set (VmHWM) minus the resident set after imports, against the checkpoint's size. Best of ``--repeat``
runs, alternating the two, with other processes' CPU use recorded.

Then a series: three checkpoints of the same shape walked through the model slot, as ``interp analyze`` does;
the peak must stay near one model (one checkpoint resident at a time).

    python benchmarks/load.py [--repeat 3] [--folder /tmp/interp-bench-gpt2]

Targets (issue 15): time <= 1.5x from_pretrained; peak memory <= 2.5x the checkpoint's size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
os.environ["HF_HUB_OFFLINE"] = "1"
import torch
torch.set_num_threads(2)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
mode, folder = sys.argv[1], sys.argv[2:]
import transformer_lens, transformers, interp.checkpoints.loading   # imports are not the load
import interp.checkpoints.formats.hf_convert
from transformers import AutoModelForCausalLM
tokens = torch.randint(0, 50257, (1, 64), generator=torch.Generator().manual_seed(0))
base = status("VmRSS")
t = time.perf_counter()
with torch.inference_mode():
    if mode == "transformers":
        model = AutoModelForCausalLM.from_pretrained(folder[0], dtype=torch.float32).eval()
        model(tokens).logits.sum().item()
    elif mode == "interp":
        model = interp.load_checkpoint(folder[0], device="cpu")
        model(tokens).sum().item()
    else:   # a series through the slot, one model resident at a time
        from interp.checkpoints.manifest import CheckpointRef, Processing
        from interp.checkpoints.loading import SLOT
        peaks = []
        for i, f in enumerate(folder):
            ref = CheckpointRef(run="bench", seed=0, step=i, path=__import__("pathlib").Path(f), model={},
                                processing=Processing(), format="hf")
            SLOT.get(ref, "cpu")(tokens).sum().item()
            peaks.append(status("VmHWM") - base)
        print(json.dumps({"peaks": peaks}))
        sys.exit(0)
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "peak_extra": status("VmHWM") - base}))
"""


def make_folder(folder: Path, n: int = 1) -> list[Path]:
    """``n`` random GPT-2-small checkpoints (created once, reused across runs)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    out = []
    for i in range(n):
        f = folder / f"step{i}"
        if not (f / "model.safetensors").is_file():
            torch.manual_seed(i)
            GPT2LMHeadModel(GPT2Config()).save_pretrained(f)
        out.append(f)
    return out


def child(mode: str, folders: list[Path]) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    r = subprocess.run([sys.executable, "-c", CHILD, mode, *map(str, folders)], capture_output=True, text=True,
                       env=env, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def others_cpu() -> float:
    """Load average minus this benchmark's own process: how busy the machine was."""
    return os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--folder", type=Path, default=Path("/tmp/interp-bench-gpt2"))
    args = ap.parse_args()
    folders = make_folder(args.folder, 3)
    size = sum(p.stat().st_size for p in folders[0].iterdir() if p.suffix == ".safetensors")
    best = {"transformers": None, "interp": None}
    for rep in range(args.repeat):
        for mode in ("transformers", "interp") if rep % 2 == 0 else ("interp", "transformers"):
            r = child(mode, folders[:1])
            r["load_average"] = others_cpu()
            if best[mode] is None or r["seconds"] < best[mode]["seconds"]:
                best[mode] = r
    hf, ours = best["transformers"], best["interp"]
    series = child("series", folders)
    mb = 2**20
    print(f"checkpoint: {size / mb:.0f} MB (GPT-2 small shape, fp32 safetensors)")
    print(f"transformers from_pretrained + forward: {hf['seconds']:.2f} s, peak +{hf['peak_extra'] / mb:.0f} MB "
          f"(load average {hf['load_average']:.1f})")
    print(f"interp load_checkpoint + forward:       {ours['seconds']:.2f} s, peak +{ours['peak_extra'] / mb:.0f} MB "
          f"(load average {ours['load_average']:.1f})")
    print(f"time ratio interp / transformers: {ours['seconds'] / hf['seconds']:.2f} (target <= 1.5)")
    print(f"interp peak / checkpoint size:    {ours['peak_extra'] / size:.2f} (target <= 2.5)")
    print("series of 3 through the model slot, peak after each: "
          + ", ".join(f"{p / size:.2f}x" for p in series["peaks"]) + " of one checkpoint")


if __name__ == "__main__":
    main()
