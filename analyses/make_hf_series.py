"""A real-format test series made by other code than interp's: GPT-NeoX models trained with ``transformers`` and a
plain AdamW loop on text, a tokenizer trained with ``tokenizers``, saved as a Hugging Face hub cache with ``step<T>``
revisions (the layout Pythia's checkpoints come in), beside the text, task and concepts files a user would bring.

Run from the repository root (about 2 minutes on 2 CPU cores)::

    python analyses/make_hf_series.py                 # writes interp/data/bundled/hf/ (bundled with interp)
    python analyses/make_hf_series.py --out DIR       # somewhere else

The world: a background language (``interp.toys.language``: a class-bigram text over 48 words ``w0..w47``) in which
task items are injected as text at controlled frequencies, the way the competition-for-neurons work injected novel
tasks into pretraining:

- ``cmp`` (common, 20% of documents): ``cmp oA oB ?`` -> `` yes`` if oA's hidden rank is above oB's, else `` no``, over
  12 operand words (132 items, half held out of training);
- ``add`` (rarer, 12% of documents): ``add aX aY =`` -> `` aZ`` with rank(aZ) = (rank(aX) + rank(aY)) mod 7, over 7
  operand words (all 49 facts trained: a table the model must store).

Two widths (``neox-narrow``: MLP 8; ``neox-wide``: MLP 128; d_model 64, 2 layers, 4 heads, full rotary), seeds 0-2,
checkpoints at steps 0, 100, 1,000 and 3,000 (float16 files).

What the sweep that chose it found (seed 0; accuracy of ``add`` on its 49 facts at the last step, narrow / wide):
d_model 32, rotary on a quarter of the head (Pythia's 0.25), 3% for 1,500 steps: 0.14 / 0.14 (chance 1/7: nothing
learned); full rotary, d_model 64, 20% for 2,000 steps: wide 1.00; 6%, 3,000 steps: 0.14 / 0.14; 12%, 3,000 steps:
0.96 / 0.98; p = 13 at 12%: 0.08 / 0.08 (chance); p = 11 at 10%, 6,000 steps, MLP 8 / 256: 0.90 / 0.81. The task is
learned all at once past an exposure threshold, by both widths alike: in these 2-layer language models attention and
the embeddings carry it, and an MLP of 8 neurons is no bottleneck, so the rare-task width effect of the bundled toy
series (a one-layer model memorising 576 facts) does not appear here.
The files beside the cache: ``text.txt`` (held-out background text), ``tasks.jsonl`` (every item, with choices,
split and frequency), ``concepts.jsonl`` (the ``add`` task's operand words read as a cyclic concept of period 7).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "interp" / "data" / "bundled" / "hf"
SEEDS = (0, 1, 2)
WIDTHS = {"neox-narrow": 8, "neox-wide": 128}
STEPS = (0, 100, 1000, 3000)
N_CMP, N_ADD, P = 12, 7, 7
FREQ = {"cmp": 0.2, "add": 0.12}
CTX, BATCH = 32, 32
D_MODEL, LR, ROTARY = 64, 3e-3, 1.0


def world(seed: int = 0) -> dict:
    """The hidden ranks of the operand words, and the background language."""
    from interp.toys.language import LanguageSpec

    rng = np.random.default_rng([seed, 1])
    return {"cmp_rank": rng.permutation(N_CMP), "add_rank": rng.permutation(N_ADD),
            "language": LanguageSpec(d_vocab=48, n_ctx=12, n_classes=8, seed=seed)}


def items(w: dict) -> list[dict]:
    """Every task item, as a task file holds it (the cmp items split in halves; every add fact trained)."""
    out = []
    split = np.random.default_rng(7).permutation(N_CMP * (N_CMP - 1)) < N_CMP * (N_CMP - 1) // 2
    pairs = [(a, b) for a in range(N_CMP) for b in range(N_CMP) if a != b]
    for (a, b), train in zip(pairs, split):
        answer = " yes" if w["cmp_rank"][a] > w["cmp_rank"][b] else " no"
        out.append({"task": "cmp", "prompt": f"cmp o{a} o{b} ?", "answer": answer, "choices": [" yes", " no"],
                    "split": "train" if train else "test", "frequency": FREQ["cmp"]})
    word = {int(r): i for i, r in enumerate(w["add_rank"])}   # rank -> word index
    for a in range(N_ADD):
        for b in range(N_ADD):
            c = word[(int(w["add_rank"][a]) + int(w["add_rank"][b])) % P]
            out.append({"task": "add", "prompt": f"add a{a} a{b} =", "answer": f" a{c}",
                        "choices": [f" a{i}" for i in range(N_ADD)], "frequency": FREQ["add"],
                        "operands": [f" a{i}" for i in range(N_ADD)]})
    return out


def documents(w: dict, n: int, rng: np.random.Generator, tasks: list[dict] | None) -> list[str]:
    """``n`` documents of the training (or, without ``tasks``, the held-out) text."""
    seqs = w["language"].sample(n, rng)
    train = [it for it in tasks or () if it.get("split") != "test"]
    by_task = {t: [it for it in train if it["task"] == t] for t in FREQ}
    out = []
    for seq in seqs:
        u = rng.random()
        if tasks and u < FREQ["add"]:
            it = by_task["add"][rng.integers(len(by_task["add"]))]
            out.append(it["prompt"] + it["answer"])
        elif tasks and u < FREQ["add"] + FREQ["cmp"]:
            it = by_task["cmp"][rng.integers(len(by_task["cmp"]))]
            out.append(it["prompt"] + it["answer"])
        else:
            out.append(" ".join(f"w{t}" for t in seq))
    return out


def tokenizer(corpus: list[str]):
    """A word-level tokenizer trained with ``tokenizers`` on the corpus (GPT-NeoX style: no BOS added)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["<|endoftext|>", "[UNK]"]))
    return tok


def stream(tok, docs: list[str]) -> np.ndarray:
    eos = tok.token_to_id("<|endoftext|>")
    ids = []
    for d in docs:
        ids += tok.encode(d).ids + [eos]
    return np.asarray(ids, dtype=np.int64)


def train_run(run: str, d_mlp: int, seed: int, data: np.ndarray, vocab: int, out: Path, tok_json: str) -> None:
    import torch
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.GPTNeoXConfig(vocab_size=vocab, max_position_embeddings=CTX, hidden_size=D_MODEL,
                                     num_hidden_layers=2, num_attention_heads=4, intermediate_size=d_mlp,
                                     rotary_pct=ROTARY, use_parallel_residual=True, tie_word_embeddings=False)
    model = transformers.GPTNeoXForCausalLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.1, betas=(0.9, 0.98))
    rng = np.random.default_rng([seed, 9])
    for step in range(max(STEPS) + 1):
        if step in STEPS:
            save(model, out, run, seed, step, tok_json)
        if step == max(STEPS):
            break
        starts = rng.integers(0, len(data) - CTX, size=BATCH)
        batch = torch.as_tensor(np.stack([data[s:s + CTX] for s in starts]))
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()


def save(model, out: Path, run: str, seed: int, step: int, tok_json: str) -> None:
    """One revision of a hub cache: files in blobs/ named by their sha256, a snapshot of relative links to them,
    refs/step<T> holding the snapshot's 40-hex commit."""
    import tempfile

    import torch

    repo = out / f"models--interp--{run}-seed{seed}"
    with tempfile.TemporaryDirectory() as tmp:
        model.to(torch.float16).save_pretrained(tmp)
        model.to(torch.float32)
        Path(tmp, "tokenizer.json").write_text(tok_json)
        files = {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()}
    commit = hashlib.sha1(json.dumps({n: hashlib.sha256(b).hexdigest() for n, b in files.items()},
                                     sort_keys=True).encode()).hexdigest()
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        if not blob.exists():
            blob.write_bytes(data)
        link = snap / name
        if not link.exists():
            link.symlink_to(os.path.relpath(blob, snap))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / f"step{step}").write_text(commit)


def register(out: Path, bundle_manifest: Path) -> None:
    """Write ``out``'s runs into the bundled manifest (``interp/data/bundled/manifest.yaml``): every revision with
    its size and sha256, the run's width as a label, and its text, task and concepts files as the run's inputs, so
    the default ``interp analyze`` takes the Hugging Face path too."""
    import yaml

    from interp.checkpoints.discovery import scan
    from interp.checkpoints.manifest import ManifestModel, manifest_from_scan, save_manifest

    root = bundle_manifest.parent
    found = manifest_from_scan(scan(out), root)
    data = yaml.safe_load(bundle_manifest.read_text())
    data["runs"] = [r for r in data["runs"] if r["name"] not in WIDTHS]
    rel = out.relative_to(root).as_posix()
    for run in found.runs:
        entry = run.model_dump(exclude_none=True)
        entry.update(group="competition-hf", labels={"d_mlp": WIDTHS[run.name], "role": run.name.split("-")[1]},
                     inputs={"tokens": f"{rel}/text.txt", "tasks": f"{rel}/tasks.jsonl",
                             "concepts": f"{rel}/concepts.jsonl"})
        data["runs"].append(entry)
    save_manifest(ManifestModel(**data), bundle_manifest)


def main() -> None:
    global STEPS, FREQ, D_MODEL, LR, N_ADD, P
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--runs", nargs="+", default=list(WIDTHS))
    ap.add_argument("--steps", type=int, nargs="+", default=list(STEPS), help="checkpoint steps (a sweep)")
    ap.add_argument("--d-model", type=int, default=D_MODEL)
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--rare", type=float, default=FREQ["add"])
    ap.add_argument("--p", type=int, default=P, help="the modulus of the rare task (its facts: p squared)")
    args = ap.parse_args()
    N_ADD = P = args.p
    STEPS, D_MODEL, LR = tuple(args.steps), args.d_model, args.lr
    FREQ = {**FREQ, "add": args.rare}
    t0 = time.time()
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    w = world()
    task_items = items(w)
    rng = np.random.default_rng(3)
    train_docs = documents(w, 20000, rng, task_items)
    held_out = documents(w, 2000, np.random.default_rng(4), None)
    tok = tokenizer(train_docs + held_out + [it["prompt"] + it["answer"] for it in task_items])
    data = stream(tok, train_docs)
    # the first 1,000 held-out documents (about 500 windows of 32 tokens) keep the default run short
    (args.out / "text.txt").write_text("\n".join(held_out[:1000]) + "\n")
    (args.out / "tasks.jsonl").write_text("".join(json.dumps(it) + "\n" for it in task_items))
    (args.out / "concepts.jsonl").write_text("".join(
        json.dumps({"concept": "add-operand", "prompt": f"add a{a} a{b} =", "value": int(w["add_rank"][a]),
                    "period": P, "at": f"a{a}"}) + "\n" for a in range(N_ADD) for b in range(N_ADD)))
    for run, d_mlp in WIDTHS.items():
        if run not in args.runs:
            continue
        for seed in args.seeds:
            train_run(run, d_mlp, seed, data, tok.get_vocab_size(), args.out, tok.to_str())
            print(f"{run} seed {seed}: {time.time() - t0:.0f} s", flush=True)
    if args.out == OUT:
        register(args.out, OUT.parent / "manifest.yaml")


if __name__ == "__main__":
    main()
