"""Real-shaped series without a task mixture, in the layouts people have, found by ``interp manifest init`` and
analysed end to end from a text file tokenized with each checkpoint's own tokenizer:

- a Hugging Face hub cache: two repositories (``pythia-mini`` and ``pythia-mini-seed1``) of a tiny GPT-NeoX, each
  with three ``step<N>`` revisions and a ``main`` ref, in the cache's refs / snapshots / blobs layout;
- HF Trainer output: ``llama-run-seed<S>/checkpoint-<N>/`` folders of a tiny Llama (with optimizer state beside);
- nanoGPT: ``nano/seed<S>/ckpt_<N>.pt`` files and the character vocabulary ``meta.pkl``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil

import pytest
import torch

from tests.helpers import cli
from tests.nanogpt_reference import save_ckpt

TEXT = "the quick brown fox jumps over the lazy dog. pack my box with five dozen liquor jugs.\n" * 40
CHARS = sorted(set(TEXT))


def _tokenizer_json(path):
    from tokenizers import Tokenizer, models

    Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(CHARS)}, merges=[])).save(str(path))


def _hf_model(kind: str, seed: int, step: int, folder):
    from transformers import (
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    torch.manual_seed(seed * 100 + step)
    if kind == "neox":
        model = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                                 num_attention_heads=4, intermediate_size=64,
                                                 max_position_embeddings=32))
    else:
        model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                             num_attention_heads=4, num_key_value_heads=2,
                                             max_position_embeddings=32))
    model.save_pretrained(folder)
    _tokenizer_json(folder / "tokenizer.json")


def _hub_repo(cache, name: str, seed: int, steps: list[int], scratch):
    """``models--org--name`` with one revision per step (blobs by content, relative snapshot links, refs)."""
    repo = cache / f"models--tiny--{name}"
    for sub in ("blobs", "refs", "snapshots"):
        (repo / sub).mkdir(parents=True, exist_ok=True)
    for step in steps:
        src = scratch / f"{name}-{step}"
        _hf_model("neox", seed, step, src)
        commit = hashlib.sha1(f"{name}{step}".encode()).hexdigest()
        snap = repo / "snapshots" / commit
        snap.mkdir()
        for f in src.iterdir():
            data = f.read_bytes()
            blob = hashlib.sha256(data).hexdigest() if f.suffix == ".safetensors" else hashlib.sha1(data).hexdigest()
            (repo / "blobs" / blob).write_bytes(data)
            os.symlink(f"../../blobs/{blob}", snap / f.name)
        (repo / "refs" / f"step{step}").write_text(commit)
    (repo / "refs" / "main").write_text(commit)


@pytest.fixture(scope="module")
def series_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("real_series")
    scratch = tmp_path_factory.mktemp("scratch")
    cache = root / "hub"
    for name, seed in (("pythia-mini", 0), ("pythia-mini-seed1", 1)):
        _hub_repo(cache, name, seed, [0, 1, 2], scratch)
    for seed in (0, 1):
        for step in (10, 20):
            folder = root / "trainer" / f"llama-run-seed{seed}" / f"checkpoint-{step}"
            _hf_model("llama", seed, step, folder)
            torch.save({"state": {}}, folder / "optimizer.pt")           # Trainer's pickles beside the weights
            (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    for seed in (0, 1):
        for step in (100, 200):
            (root / "nano" / f"seed{seed}").mkdir(parents=True, exist_ok=True)
            save_ckpt(root / "nano" / f"seed{seed}" / f"ckpt_{step}.pt", seed=seed * 10 + step // 100,
                      iter_num=step)
    (root / "nano" / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": len(CHARS), "stoi": {c: i for i, c in
                                                                                            enumerate(CHARS)},
                                                           "itos": dict(enumerate(CHARS))}))
    (root / "prompts.txt").write_text(TEXT)
    return root


def test_manifest_init_finds_every_layout(series_root, tmp_path):
    root = tmp_path / "s"
    shutil.copytree(series_root, root, symlinks=True)
    r = cli(["manifest", "init", root])
    assert r.exit_code == 0, r.output
    from interp.checkpoints.manifest import load_manifest

    refs = load_manifest(root / "manifest.yaml").refs()
    by_run = {}
    for ref in refs:
        by_run.setdefault((ref.run, ref.format), set()).add((ref.seed, ref.step))
    assert by_run == {("pythia-mini", "hf"): {(s, t) for s in (0, 1) for t in (0, 1, 2)},
                      ("llama-run", "hf"): {(s, t) for s in (0, 1) for t in (10, 20)},
                      ("nano", "nanogpt"): {(s, t) for s in (0, 1) for t in (100, 200)}}
    hub = [ref for ref in refs if ref.run == "pythia-mini"]
    assert {ref.revision for ref in hub} == {"step0", "step1", "step2"}
    assert "revision main" in r.output and "carries no step" in r.output
    assert all(ref.sha256 and ref.size for ref in refs)
    r = cli(["verify", "--manifest", root / "manifest.yaml"])
    assert r.exit_code == 0 and "14 checkpoints verified, 0 failed" in r.output, r.output
    r = cli(["manifest", "init", root])
    assert r.exit_code == 2 and "--force" in r.stderr


@pytest.mark.slow
def test_three_families_analysed_from_text(series_root, tmp_path):
    root = tmp_path / "s"
    shutil.copytree(series_root, root, symlinks=True)
    assert cli(["manifest", "init", root]).exit_code == 0
    out = tmp_path / "out"
    r = cli(["analyze", "--manifest", root / "manifest.yaml", "--tokens", root / "prompts.txt", "--window", "16",
             "--out", out, "-q", "-a", "neuron-stats", "-a", "universal-neurons", "-a", "stages",
             "-a", "task-allocation", "-a", "fourier-competition", "--set", "stages.n_draws=4",
             "--set", "stages.n_burnin=2", "--set", "stages.n_chains=1"])
    assert r.exit_code == 0, r.output
    summaries = {n: json.loads((out / n / "summary.json").read_text())
                 for n in ("neuron-stats", "universal-neurons", "stages", "task-allocation", "fourier-competition")}
    assert summaries["neuron-stats"]["units"] == 14 and summaries["stages"]["units"] == 14
    assert summaries["universal-neurons"]["units"] == 3 + 2 + 2          # one per (run, step) seed group
    assert "--tasks FILE" in summaries["task-allocation"]["skipped"]   # names the flag that would supply it
    assert "--concepts FILE" in summaries["fourier-competition"]["skipped"]
    assert "task-allocation: skipped" in r.output
    unit = json.loads((out / "neuron-stats" / "pythia-mini" / "seed1" / "step2.json").read_text())
    assert unit["provenance"]["checkpoints"][0]["revision"] == "step2"
    # a window's first position is left out of the statistics over text (the shared outlier the paper filtered)
    assert unit["scalars"]["n_tokens"] == (len(TEXT) // 16) * 15
