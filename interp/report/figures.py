"""Figure specs: what a figure shows, as plain data (no plotting library, no HTML).

An analyzer's ``summarize`` returns a list of these inside its summary (``figures``, stored in
``<analyzer>/summary.json`` through ``to_json``); the report turns each into an interactive plotly figure and a PNG
(``interp.report.render_plotly``, ``interp.report.render_png``), so ``interp report`` redraws every page from the
saved summaries without touching a model.

Kinds: ``Lines`` (curves, usually over training steps: one ``Line`` per seed, thin, and its mean, thick, coloured by
``group``, normally the run), ``Heatmap`` (labelled matrices, side by side), ``Histogram`` (pre-binned counts),
``Scatter`` (points coloured by a value or a category) and ``Bars``. Every figure may be split into ``panels``
(a panel name on each line, or a list of matrices / histograms / point clouds). A figure that carries no information
is not drawn: ``why_not_drawn`` gives the one line the page prints instead (the analyzer's ``skip_reason``, or one
found here: no points, only 1 x 1 matrices). ``notes`` list parts left out of a drawn figure, one line each.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar


def _num(v: Any) -> float | None:
    """A JSON-safe number: 6 significant digits (figures are for looking at; the tables keep full precision),
    ``None`` for NaN/inf (drawn as a gap)."""
    if v is None:
        return None
    v = float(v)
    return float(f"{v:.6g}") if math.isfinite(v) else None


def _nums(xs: Any) -> list[float | None]:
    return [_num(v) for v in xs]


def finite(xs: list[float | None]) -> list[float]:
    return [v for v in xs if v is not None and math.isfinite(v)]


class Spec:
    """JSON round trip shared by every spec: nested specs are named in ``nested`` (field -> class)."""

    nested: ClassVar[dict[str, type]] = {}

    def to_json(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            cls = self.nested.get(f.name)
            out[f.name] = [x.to_json() for x in v] if cls else v
        if isinstance(self, Figure):
            out["kind"] = self.kind
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]):
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for name, sub in cls.nested.items():
            if name in kw:
                kw[name] = [sub.from_json(x) for x in kw[name]]
        missing = [f.name for f in fields(cls) if f.name not in kw and f.default is MISSING
                   and f.default_factory is MISSING]
        if missing:
            raise ValueError(f"{cls.__name__} spec without {missing}")
        return cls(**kw)


@dataclass
class Line(Spec):
    x: list[float | None]
    y: list[float | None]
    group: str                 # colour and legend entry: a run, usually
    panel: str = ""            # which sub-plot ("" when the figure has one)
    seed: int | None = None    # one seed's curve (drawn thin); None: a mean over seeds or a single curve
    n_seeds: int = 0           # for a mean: over how many seeds (hover and legend say so)
    label: str = ""            # extra hover text: a frequency, a latent
    faint: bool = False        # context drawn grey and behind (e.g. frequencies that did not survive)
    points: bool = False       # markers only, no line through them (e.g. estimates flagged as unreliable)
    # an interval around y, drawn as a shaded band (e.g. a bootstrap interval): one bound per x, or none
    lo: list[float | None] | None = None
    hi: list[float | None] | None = None

    def __post_init__(self) -> None:
        self.x, self.y = _nums(self.x), _nums(self.y)
        if (self.lo is None) != (self.hi is None):
            raise ValueError("a Line's band needs both lo and hi")
        if self.lo is not None:
            self.lo, self.hi = _nums(self.lo), _nums(self.hi)
            if not len(self.lo) == len(self.hi) == len(self.x):
                raise ValueError("a Line's lo and hi must have one value per x")


@dataclass
class Mark(Spec):
    """A vertical line at ``x0`` or, with ``x1``, a shaded span, in a group's colour (a stage boundary, a drop)."""

    x0: float
    x1: float | None = None
    group: str = ""
    panel: str = ""
    label: str = ""


@dataclass
class Matrix(Spec):
    title: str
    z: list[list[float | None]]
    rows: list[str]
    cols: list[str]

    def __post_init__(self) -> None:
        self.z = [_nums(r) for r in self.z]


@dataclass
class Hist(Spec):
    """Pre-binned counts: ``edges`` has one more entry than each series' counts."""

    title: str
    edges: list[float]
    counts: dict[str, list[float]]


@dataclass
class Points(Spec):
    title: str
    x: list[float | None]
    y: list[float | None]
    color: list[float | None]
    color_title: str = ""
    categorical: bool = False      # colour = a category (a latent's index); else a continuous value
    cyclic: bool = False           # a continuous value on a circle (an angle)

    def __post_init__(self) -> None:
        self.x, self.y, self.color = _nums(self.x), _nums(self.y), _nums(self.color)


@dataclass
class BarGroup(Spec):
    title: str
    categories: list[str]
    values: dict[str, list[float | None]]   # series label -> one value per category
    y_label: str = ""


@dataclass
class Figure(Spec):
    name: str                  # file stem (<analyzer>/<name>.png) and the plot's id on the page
    title: str
    caption: str = ""          # what is plotted, how to read it, what the paper found (with its arXiv id)
    skip_reason: str = ""      # set when the analyzer knows the figure carries no information
    notes: list[str] = field(default_factory=list)   # parts left out of the drawing, one line each

    kind: ClassVar[str] = ""

    def why_not_drawn(self) -> str:
        """One line saying why this figure is not drawn, or "" when it is."""
        return self.skip_reason or self.empty_reason()

    def empty_reason(self) -> str:
        return ""


@dataclass
class Lines(Figure):
    x_label: str = "training step"
    y_label: str = ""
    lines: list[Line] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    log_x: bool = True
    log_y: bool = False
    group_title: str = "run"   # what a colour stands for (hover and legend title)
    y_labels: dict[str, str] = field(default_factory=dict)   # panel -> its own y label, where panels differ
    zero_line: bool = False    # draw y = 0

    kind: ClassVar[str] = "lines"
    nested: ClassVar[dict[str, type]] = {"lines": Line, "marks": Mark}

    def empty_reason(self) -> str:
        if not any(finite(l.y) for l in self.lines):
            return "no finite values to plot"
        return ""

    def panels(self) -> list[str]:
        out: list[str] = []
        for l in self.lines:
            if l.panel not in out:
                out.append(l.panel)
        return out


@dataclass
class Heatmap(Figure):
    panels: list[Matrix] = field(default_factory=list)
    row_title: str = ""
    col_title: str = ""
    z_title: str = ""
    zmin: float | None = None
    zmax: float | None = None
    diverging: bool = False    # a signed quantity: a red-blue scale centred on 0
    fmt: str = ".2f"           # how each cell's value is printed (a Python / d3 format spec)

    kind: ClassVar[str] = "heatmap"
    nested: ClassVar[dict[str, type]] = {"panels": Matrix}

    def drawn(self) -> list[Matrix]:
        """The panels with something to compare: a 1 x 1 matrix (one task) has nothing."""
        return [m for m in self.panels if len(m.rows) * len(m.cols) > 1 and any(finite(r) for r in m.z)]

    def left_out(self) -> list[str]:
        return [f"{m.title}: not drawn, a {len(m.rows)} x {len(m.cols)} matrix has nothing to compare"
                for m in self.panels if m not in self.drawn()]

    def empty_reason(self) -> str:
        if not self.panels:
            return "no matrices to show"
        if not self.drawn():
            sizes = sorted({f"{len(m.rows)} x {len(m.cols)}" for m in self.panels})
            return f"only {' / '.join(sizes)} matrices (a single task), which carry no comparison"
        return ""


@dataclass
class Histogram(Figure):
    panels: list[Hist] = field(default_factory=list)
    x_label: str = ""
    y_label: str = "count"

    kind: ClassVar[str] = "histogram"
    nested: ClassVar[dict[str, type]] = {"panels": Hist}

    def empty_reason(self) -> str:
        if not any(sum(c) > 0 for h in self.panels for c in h.counts.values()):
            return "no values to count"
        return ""


@dataclass
class Scatter(Figure):
    panels: list[Points] = field(default_factory=list)
    x_label: str = ""
    y_label: str = ""

    kind: ClassVar[str] = "scatter"
    nested: ClassVar[dict[str, type]] = {"panels": Points}

    def empty_reason(self) -> str:
        if not any(finite(p.x) for p in self.panels):
            return "no points to plot"
        return ""


@dataclass
class Bars(Figure):
    panels: list[BarGroup] = field(default_factory=list)

    kind: ClassVar[str] = "bars"
    nested: ClassVar[dict[str, type]] = {"panels": BarGroup}

    def empty_reason(self) -> str:
        if not any(finite(v) for b in self.panels for v in b.values.values()):
            return "no values to show"
        return ""


KINDS: dict[str, type[Figure]] = {c.kind: c for c in (Lines, Heatmap, Histogram, Scatter, Bars)}


def from_json(d: dict[str, Any]) -> Figure:
    """A figure spec from its JSON form; the kind is looked up in a fixed table (a file cannot name a class)."""
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind not in KINDS:
        raise ValueError(f"unknown figure kind {kind!r}; known: {sorted(KINDS)}")
    return KINDS[kind].from_json(d)


def seed_lines(per_seed: dict[str, tuple[list, list]], group: str, panel: str = "", mean: bool = True) -> list[Line]:
    """One thin line per seed ({seed: (x, y)}) and, with ``mean``, their mean over the steps every seed has."""
    out = [Line(x, y, group, panel, seed=int(s)) for s, (x, y) in sorted(per_seed.items(), key=lambda kv: int(kv[0]))]
    if mean and per_seed:
        common = sorted(set.intersection(*(set(x) for x, _ in per_seed.values())))
        ys = [[dict(zip(x, y))[st] for x, y in per_seed.values()] for st in common]
        means = [sum(v for v in col if v is not None) / max(1, sum(v is not None for v in col))
                 if any(v is not None for v in col) else None for col in ys]
        out.append(Line(common, means, group, panel, n_seeds=len(per_seed)))
    return out


def per_run_lines(per_run: dict[str, dict[str, dict]], key: str, panel: str = "") -> list[Line]:
    """Seeds and mean of one scalar of a ``summarize_scalars`` table (``{run: {step: {key: {per_seed, mean}}}}``):
    the mean line is the table's own mean, so the figure and the table agree exactly."""
    out = []
    for run, steps in sorted(per_run.items()):
        rows = sorted((int(st), row[key]) for st, row in steps.items() if key in row)
        if not rows:
            continue
        seeds = sorted({s for _, r in rows for s in r["per_seed"]}, key=int)
        for s in seeds:
            pts = [(st, r["per_seed"][s]) for st, r in rows if s in r["per_seed"]]
            out.append(Line([p[0] for p in pts], [p[1] for p in pts], run, panel, seed=int(s)))
        out.append(Line([st for st, _ in rows], [r["mean"] for _, r in rows], run, panel, n_seeds=len(seeds)))
    return out
