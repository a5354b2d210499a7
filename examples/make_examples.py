"""Write the example input files in this folder (seeded; rerun to regenerate them byte for byte).

- ``weekdays_months.jsonl``: a concepts file (``--concepts``): days of the week (period 7) and months (period 12),
  each in 8 sentence templates, read at the day's or month's own token (``at``). Engels et al. (arXiv 2405.14860)
  found both on circles in GPT-2 and Mistral 7B.
- ``random_token_tasks.jsonl``: a task file (``--tasks``) of the two random-token tasks of the competition-for-neurons
  work (Huang et al., arXiv 2605.29548): ``compare`` (is the first operand's hidden rank above the second's, over 12
  arbitrary tokens; half the items held out) and ``modadd`` (the operand whose rank is the sum of the two ranks mod
  7). A model knows them only if they were injected into its training; ``frequency`` records the share of training
  sequences each was injected at (the rare and common task follow from it).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
DAY_TEMPLATES = ["See you on {}", "The meeting moved to {}", "We always go swimming on {}", "It rained all day on {}",
                 "The shop is closed every {}", "Let's talk again on {}", "My favourite day is {}",
                 "The parcel should arrive by {}"]
MONTH_TEMPLATES = ["My birthday is in {}", "The trip is planned for {}", "It snowed a lot in {}",
                   "The report is due at the end of {}", "They got married in {}", "School starts again in {}",
                   "The garden is at its best in {}", "Prices went up in {}"]


def concepts() -> list[dict]:
    rows = [{"concept": "weekday", "prompt": t.format(d), "value": i, "period": 7, "at": d}
            for i, d in enumerate(DAYS) for t in DAY_TEMPLATES]
    return rows + [{"concept": "month", "prompt": t.format(m), "value": i, "period": 12, "at": m}
                   for i, m in enumerate(MONTHS) for t in MONTH_TEMPLATES]


def tasks(seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    ops = ["qx", "kv", "zb", "pf", "lm", "rt", "wd", "jn", "hs", "gc", "yv", "bt"]
    rank = dict(zip(ops, rng.sample(range(len(ops)), len(ops))))
    rows = [{"task": "compare", "prompt": f"{a} > {b} ?", "answer": " yes" if rank[a] > rank[b] else " no",
             "choices": [" yes", " no"], "split": "train" if rng.random() < 0.5 else "test", "frequency": 0.01}
            for a in ops for b in ops if a != b]
    p, mod_ops = 7, ["ta", "tb", "tc", "td", "te", "tf", "tg"]
    mrank = dict(zip(mod_ops, rng.sample(range(p), p)))
    by_rank = {r: o for o, r in mrank.items()}
    rows += [{"task": "modadd", "prompt": f"{a} + {b} =", "answer": " " + by_rank[(mrank[a] + mrank[b]) % p],
              "choices": [" " + o for o in mod_ops], "frequency": 0.0001, "operands": [" " + o for o in mod_ops]}
             for a in mod_ops for b in mod_ops]
    return rows


def main() -> None:
    (HERE / "weekdays_months.jsonl").write_text("".join(json.dumps(r) + "\n" for r in concepts()))
    (HERE / "random_token_tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tasks()))


if __name__ == "__main__":
    main()
