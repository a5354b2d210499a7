"""``interp report`` redraws the pages of a results folder from what is saved there, anywhere it is copied to."""

import json
import re
import shutil

import pytest

from tests.helpers import cli


@pytest.fixture(scope="module")
def tiny_results(tiny_series_dir, tmp_path_factory):
    """Four analyzers on the tiny trained series (run 'tiny', seeds 0-1, 4 steps), through the CLI."""
    out = tmp_path_factory.mktemp("tiny-results") / "res"
    r = cli(["analyze", "--checkpoint-dir", tiny_series_dir, "--out", out, "-a", "neuron-stats", "-a", "stages",
             "-a", "task-allocation", "-a", "universal-neurons", "--set", "stages.llc=false", "-q"])
    assert r.exit_code == 0, r.output
    assert "the report (every figure, caption and provenance)" in r.output
    assert "± " in r.output and not re.search(r"\[\d", r.output)     # headlines as mean ± std, not lists
    return out


def _copy(results, dest):
    shutil.copytree(results, dest, ignore=shutil.ignore_patterns("cache"))
    for p in list(dest.glob("*.html")) + list(dest.glob("*/*.png")) + [dest / "plotly.min.js"]:
        p.unlink()
    return dest


def test_report_on_a_copied_folder_renders_with_relative_links(tiny_results, tmp_path):
    copy = _copy(tiny_results, tmp_path / "elsewhere" / "copied")
    r = cli(["report", copy])
    assert r.exit_code == 0, r.output
    pages = sorted(copy.glob("*.html"))
    assert [p.name for p in pages] == ["index.html", "neuron-stats.html", "stages.html", "task-allocation.html",
                                       "universal-neurons.html"]
    assert (copy / "plotly.min.js").is_file() and list((copy / "neuron-stats").glob("*.png"))
    for page in pages:
        html = page.read_text()
        for forbidden in (str(copy), str(tiny_results), str(tmp_path), "file://"):
            assert forbidden not in html, (page.name, forbidden)
        assert not re.search(r"(?:^|[\s'\"=(>])/(?:tmp|home|root|work|Users|var|private)/", html), page.name
        for link in re.findall(r"(?:href|src)='([^']+)'", html):
            if link.startswith("https://arxiv.org/"):
                continue
            target = link.split("#")[0]
            assert not target or (copy / target).is_file(), (page.name, link)
    title = re.search(r"<title>(.*?)</title>", (copy / "index.html").read_text()).group(1)
    assert "/" not in title


def test_report_needs_no_model_and_only_the_saved_files(tiny_results, tmp_path, monkeypatch):
    copy = _copy(tiny_results, tmp_path / "c")
    import interp.checkpoints.loading

    monkeypatch.setattr(interp.checkpoints.loading, "load_ref",
                        lambda *a, **k: pytest.fail("the report loaded a model"))
    index = interp.write_report(copy)
    assert index == copy / "index.html" and (copy / "stages.html").is_file()


def test_run_record_and_provenance_on_the_page(tiny_results):
    record = json.loads((tiny_results / "run.json").read_text())
    assert record["command"].startswith("interp analyze --checkpoint-dir …/") and "--out …/res" in record["command"]
    assert [c["id"] for c in record["series"]["checkpoints"]][:1] == ["tiny/seed0/step0"]
    assert all(not c["path"].startswith("/") for c in record["series"]["checkpoints"])
    assert record["analyzers"]["stages"]["llc"] is False
    assert record["timings"]["neuron-stats"]["units_run"] == 8
    page = (tiny_results / "index.html").read_text()
    for text in ("How these results were made", record["series"]["checkpoints"][0]["sha256"][:12], "torch",
                 "Wall time per analyzer", "interp analyze --checkpoint-dir"):
        assert text in page, text
    stages = (tiny_results / "stages.html").read_text()
    assert "llc" in stages and "Not drawn: the LLC was not estimated" in stages
    assert "stages/tiny/seed1/step20.json" in stages and "stages/tiny/seed1/step20.h5" in stages


def test_report_errors_are_one_line(tmp_path):
    r = cli(["report", tmp_path / "nothing"])
    assert r.exit_code == 2 and "no such results folder" in r.stderr and "Traceback" not in r.output
    (tmp_path / "empty").mkdir()
    r = cli(["report", tmp_path / "empty"])
    assert r.exit_code == 2 and "interp analyze --out" in r.stderr
    (tmp_path / "bad" / "x").mkdir(parents=True)
    (tmp_path / "bad" / "x" / "summary.json").write_text("{not json")
    r = cli(["report", tmp_path / "bad"])
    assert r.exit_code == 2 and "summary.json" in r.stderr
