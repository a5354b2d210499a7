"""The report over the bundled results: an index card per analyzer, a page per analyzer, every link relative."""

import json
import re


def _links(page: str) -> list[str]:
    return re.findall(r"(?:href|src)='([^']+)'", page)


def test_index_has_a_card_and_a_page_per_analyzer(bundled_results):
    out = bundled_results.out_dir
    page = bundled_results.index.read_text()
    for name, summary in bundled_results.summaries.items():
        assert f"<h2><a href='{name}.html'>{name}</a></h2>" in page
        assert (out / f"{name}.html").is_file()
        assert summary["question"] and summary["method"]
    thumbs = re.findall(r"<img src='([^']+)'", page)
    assert thumbs and all((out / t).is_file() for t in thumbs)
    assert "How these results were made" in page and "interp.analyze() from Python" in page   # the API made it


def test_every_link_of_every_page_resolves_inside_the_folder(bundled_results):
    out = bundled_results.out_dir
    for page in out.glob("*.html"):
        for link in _links(page.read_text()):
            if link.startswith("https://arxiv.org/abs/"):
                continue
            path = link.split("#")[0]
            assert not re.match(r"^[a-z]+:|^/", link), (page.name, link)
            assert not path or (out / path).is_file(), (page.name, link)


def test_pages_print_headlines_as_mean_and_spread_not_lists(bundled_results):
    page = (bundled_results.out_dir / "task-allocation.html").read_text()
    assert re.search(r"0\.\d\d ± 0\.\d\d \(3 seeds\)", page)
    for p in bundled_results.out_dir.glob("*.html"):
        text = re.sub(r"<script.*?</script>", "", p.read_text(), flags=re.S)
        assert not re.search(r"\[\s*-?\d+(\.\d+)?\s*,", text), p.name


def test_run_record_has_the_provenance(bundled_results):
    record = json.loads((bundled_results.out_dir / "run.json").read_text())
    assert record["series"]["checkpoints"] and all(len(c["sha256"]) == 64 and c["size"] > 0
                                                    for c in record["series"]["checkpoints"])
    assert set(record["analyzers"]) == set(bundled_results.summaries)
    assert record["versions"]["interp"] and record["device"]["used"] == "cpu"
    # a fresh run: every unit timed (neuron-stats rides universal-neurons' pass: its time is counted there)
    assert all(t["compute_s"] > 0 for n, t in record["timings"].items() if n != "neuron-stats")
    assert str(bundled_results.out_dir) not in json.dumps(record)


def test_every_figure_has_a_caption_citing_its_paper(bundled_results):
    from interp.report.figures import from_json

    for name, summary in bundled_results.summaries.items():
        for d in summary.get("figures") or []:
            fig = from_json(d)
            assert re.search(r"arXiv \d{4}\.\d{4,5}", fig.caption), (name, fig.name)
        assert re.search(r"arXiv \d{4}\.\d{4,5}", summary["method"]), name
