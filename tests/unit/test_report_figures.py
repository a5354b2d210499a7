"""Figure specs and their two renderers (plotly for the pages, matplotlib for PNGs), headline formatting, and the
page builder on hand-made summaries: no model, no analysis, a few seconds."""

import json

import pytest

from interp.report import figures as F
from interp.report import headline as H
from interp.report import render_plotly, render_png


def _lines() -> F.Lines:
    lines = F.seed_lines({0: ([0, 1, 10], [1.0, 0.5, 0.2]), 1: ([0, 1, 10], [1.2, 0.7, 0.1])}, "narrow")
    lines += F.seed_lines({0: ([0, 1, 10], [1.0, 0.3, 0.0]), 1: ([0, 1, 10], [0.9, 0.2, 0.1])}, "wide")
    return F.Lines("loss", "Loss over training", caption="c", y_label="loss", lines=lines,
                   marks=[F.Mark(1, None, "wide")])


def _all_kinds() -> list[F.Figure]:
    return [
        _lines(),
        F.Heatmap("m", "Matrices", panels=[F.Matrix("narrow", [[1.0, 0.3], [0.3, 1.0]], ["a", "b"], ["a", "b"]),
                                           F.Matrix("modadd", [[1.0]], ["modadd"], ["modadd"])], diverging=True),
        F.Histogram("h", "Hist", panels=[F.Hist("narrow", [0, 0.5, 1], {"real": [3, 1], "baseline": [1, 3]})]),
        F.Scatter("s", "Points", panels=[F.Points("theta", [0, 1, 2], [1, 0, 1], [0.1, 3.0, 6.0], cyclic=True),
                                         F.Points("latent", [0, 1, 2], [1, 0, 1], [0, -1, 5], categorical=True)]),
        F.Bars("b", "Bars", panels=[F.BarGroup("kurtosis", ["narrow", "wide"], {"u": [None, 2.0], "o": [3, 4]})]),
    ]


def test_specs_round_trip_through_json():
    for fig in _all_kinds():
        back = F.from_json(json.loads(json.dumps(fig.to_json())))
        assert type(back) is type(fig) and back.to_json() == fig.to_json()
    with pytest.raises(ValueError, match="unknown figure kind"):
        F.from_json({"kind": "os.system", "name": "x", "title": "x"})


def test_nan_is_a_gap_and_numbers_are_rounded():
    line = F.Line([0, 1], [float("nan"), 1 / 3], "r")
    assert line.y == [None, 0.333333]
    assert json.dumps(F.Lines("l", "t", lines=[line]).to_json(), allow_nan=False)


def test_figures_without_information_say_why_in_one_line():
    one = F.Heatmap("m", "t", panels=[F.Matrix("modadd", [[1.0]], ["modadd"], ["modadd"])])
    assert "1 x 1" in one.why_not_drawn() and "\n" not in one.why_not_drawn()
    assert F.Lines("l", "t").why_not_drawn() == "no finite values to plot"
    assert F.Lines("l", "t", lines=[F.Line([0, 1], [None, None], "r")]).why_not_drawn()
    assert F.Lines("l", "t", lines=[F.Line([0], [1.0], "r")], skip_reason="said by the analyzer").why_not_drawn() \
        == "said by the analyzer"
    mixed = _all_kinds()[1]
    assert not mixed.why_not_drawn() and [m.title for m in mixed.drawn()] == ["narrow"]
    assert mixed.left_out() == ["modadd: not drawn, a 1 x 1 matrix has nothing to compare"]


def test_plotly_lines_colour_runs_thin_seeds_thick_means_and_hover():
    fig = render_plotly.render(_lines(), {"narrow": "#111111", "wide": "#222222"})
    traces = fig["data"]
    assert len(traces) == 6
    seeds = [t for t in traces if "seed" in t["hovertemplate"] and "mean" not in t["hovertemplate"]]
    means = [t for t in traces if "mean of 2 seeds" in t["hovertemplate"]]
    assert len(seeds) == 4 and len(means) == 2
    assert max(t["line"]["width"] for t in seeds) < min(t["line"]["width"] for t in means)
    assert sorted(t["name"] for t in traces if t["showlegend"]) == ["narrow", "wide"]   # one entry per run
    assert {t["line"]["color"] for t in means} == {"#111111", "#222222"}
    hover = means[0]["hovertemplate"]
    assert "run: narrow" in hover and "training step: %{customdata}" in hover and "loss: %{y" in hover
    assert means[0]["x"][0] == 0.5 and means[0]["customdata"][0] == "0"        # step 0 drawn at 0.5, called 0
    axis = fig["layout"]["xaxis"]
    assert axis["type"] == "log" and axis["ticktext"][0] == "0" and axis["tickvals"][0] == 0.5
    assert fig["layout"]["shapes"][0]["line"]["color"] == "#222222"


def test_plotly_json_is_valid_for_plotly():
    import plotly.graph_objects as go

    for fig in _all_kinds():
        out = render_plotly.render(fig, {})
        go.Figure(out)   # raises on any property plotly.js does not know


def test_png_renderer_writes_every_kind(tmp_path):
    for fig in _all_kinds():
        path = render_png.render(fig, tmp_path / f"{fig.name}.png", {"narrow": "#0072B2"})
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_headline_rows_print_mean_spread_and_seed_count():
    row = H.seeds("narrow", "rare-task accuracy", {0: 0.5, 1: 0.59, 2: 0.5}, 2)
    # the sample standard deviation (n - 1) over seeds: the population one (0.04) understates it
    assert H.format_value(row) == "0.53 ± 0.05 (3 seeds)"
    assert H.format_row(row) == ("narrow: rare-task accuracy", "0.53 ± 0.05 (3 seeds)")
    assert H.format_value(H.seeds("r", "onset", {0: 14.0, 1: None, 2: 16.0}, 1)) == "15.0 ± 1.4 (2 of 3 seeds)"
    assert H.format_value(H.seeds("r", "x", {0: 0.1, 1: 0.3}, 2, value=0.25)) == "0.25 ± 0.14 (2 seeds)"
    assert H.format_value(H.single("r", "auroc", 0.70912, 3, "pooled")) == "0.709; pooled"
    assert H.format_value(H.text("r", "kinds", "tiling x2")) == "tiling x2"


def _summary_dir(tmp_path, figures):
    d = tmp_path / "res"
    (d / "toy").mkdir(parents=True)
    summary = {"analyzer": "toy", "units": 2, "question": "Does it?", "method": "Like so (arXiv 2401.12181).",
               "headline": [H.seeds("narrow", "a number", {0: 1.0, 1: 2.0})],
               "figures": [f.to_json() for f in figures]}
    (d / "toy" / "summary.json").write_text(json.dumps(summary))
    return d


def test_page_prints_the_reason_instead_of_a_useless_figure(tmp_path):
    from interp.report.build import write_report

    one = F.Heatmap("overlap", "Overlap", panels=[F.Matrix("modadd", [[1.0]], ["modadd"], ["modadd"])])
    d = _summary_dir(tmp_path, [one, _lines()])
    index = write_report(d)
    page = (d / "toy.html").read_text()
    assert "Not drawn: only 1 x 1 matrices (a single task), which carry no comparison." in page
    assert "id='plot-overlap'" not in page and not (d / "toy" / "overlap.png").exists()
    assert "id='plot-loss'" in page and (d / "toy" / "loss.png").is_file()
    assert "https://arxiv.org/abs/2401.12181" in page and "1.500 ± 0.707 (2 seeds)" in page
    assert (d / "plotly.min.js").stat().st_size > 1_000_000
    assert "No run record" in index.read_text()


def test_scripts_cannot_be_closed_from_data(tmp_path):
    from interp.report.build import write_report

    evil = F.Lines("x", "t", lines=[F.Line([0, 1], [1, 2], "</script><script>alert(1)</script>")])
    d = _summary_dir(tmp_path, [evil])
    write_report(d)
    page = (d / "toy.html").read_text()
    assert "</script><script>alert" not in page                # the data cannot end its script element
    assert page.count("</script>") == page.count("<script") == 3  # plotly.js, the figures' JSON, the drawing


def test_old_summaries_get_a_note_not_a_crash(tmp_path):
    from interp.report.build import write_report

    d = _summary_dir(tmp_path, [])
    s = json.loads((d / "toy" / "summary.json").read_text())
    s.update(figures=["/somewhere/old.png"], headline={"narrow rare acc": [0.5, 0.6]})
    (d / "toy" / "summary.json").write_text(json.dumps(s))
    write_report(d)
    page = (d / "toy.html").read_text()
    assert "written by an older interp" in page and "/somewhere" not in page
    assert "0.5, 0.6" in page and "[0.5" not in page


def test_short_path_removes_absolute_paths():
    from interp.report.provenance import short_path

    assert short_path("interp analyze --out /tmp/x/results -q") == "interp analyze --out …/results -q"
    assert short_path("--manifest=/home/me/m.yaml") == "--manifest=…/m.yaml"
    assert short_path("a / b and rel/path") == "a / b and rel/path"


def test_progress_bar_only_on_a_terminal():
    import io

    from interp.runner.progress import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    quiet = Progress(5, stream=io.StringIO())
    assert quiet.bar is None
    tty = Tty()
    p = Progress(5, stream=tty)
    p.working("neuron-stats", "narrow/seed0/step3")
    p.done(2)
    p.close()
    text = tty.getvalue()
    assert "2/5 units" in text and "neuron-stats · narrow/seed0/step3" in text
    assert Progress(5, enabled=False, stream=Tty()).bar is None


def test_a_summary_cannot_name_a_file_outside_its_folder(tmp_path):
    from interp.errors import UnsafeInputError
    from interp.report.build import write_report

    d = _summary_dir(tmp_path, [F.Lines("../../escaped", "t", lines=[F.Line([0, 1], [1, 2], "r")])])
    with pytest.raises(UnsafeInputError, match="becomes a file name"):
        write_report(d)
    assert not list(tmp_path.rglob("escaped*"))


def test_bar_categories_that_look_like_numbers_stay_categories():
    """Steps as bar categories ("300", "3000") would be placed on a linear axis as thin, far-apart bars."""
    fig = F.Bars("b", "Bars", panels=[F.BarGroup("lock-in", ["0", "300", "3000"], {"layer 0": [1, 2, 3]})])
    out = render_plotly.render(fig, {})
    assert out["data"][0]["x"] == ["0", "300", "3000"]
    assert out["layout"]["xaxis"]["type"] == "category"
