"""The results folder's one-page view."""

def test_index_page_links_every_figure(bundled_results):
    """index.html names every analyzer and links each figure by a path that exists relative to the page."""
    import re

    page = bundled_results.index.read_text()
    for name in bundled_results.summaries:
        assert f"<h2 id='{name}'>" in page
    links = re.findall(r"<img src='([^']+)'", page)
    assert len(links) == sum(len(s.get("figures") or []) for s in bundled_results.summaries.values())
    assert all((bundled_results.index.parent / link).is_file() for link in links)
