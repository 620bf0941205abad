"""report.html, the report people read: built from a real run, then opened in headless Chromium.

The page is checked as a browser runs it (Debian's `chromium`; .ci/run installs it): every
section is there, the map has its points, the rejections filter by a URL fragment, and records
that carry `<script>`, `<img onerror>`, `</script>` and `javascript:` payloads stay text.
One screenshot per section goes to test-artifacts/report-html/ (git-ignored) for a person to
look at; they are not compared pixel by pixel. Browser tests skip, saying why, only when no
chromium is installed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthgate import Config, run
from synthgate import report_html
from synthgate.records import Reason, new_table, reject
from synthgate.report import to_html as report_only_html

from conftest import HashedNgramEmbedder, real_sentences

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "report-html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: the browser tests need Debian's chromium "
    "(apt-get install chromium; .ci/run installs it)")

TITLE_PAYLOAD = "document.title='pwned'"
PAYLOADS = [
    "</script><script>" + TITLE_PAYLOAD + "</script> a record that tries to end the data block",
    '<img src=x onerror="' + TITLE_PAYLOAD + '"> a record that tries to add an image',
    '<a href="javascript:alert(1)">click me</a> javascript:alert(document.domain) a link',
    "</SCRIPT ><!-- <script> \u2028 line \u2029 separators and a <style>body{display:none}"
    "</style> block",
]
PAYLOAD_IDS = ["<script>alert(1)</script>", "javascript:alert(1)", '"><img src=x>', "p4"]


def _near_copy(sentence: str, k: int) -> str:
    words = sentence.split()
    words[len(words) // 2] = f"changed{k}"
    return " ".join(words)


def _corpus() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Real: Python's own reference prose. Synthetic: sentence halves recombined (healthy),
    copies of real records, near repeats of synthetic ones, boilerplate, code, and the
    payloads, each twice (so each is also a rejected exact duplicate of the other)."""
    prose = real_sentences(min_words=12, prose=True)
    real = prose[:360]
    rest = prose[360:]
    healthy = [" ".join(a.split()[: len(a.split()) // 2] + b.split()[len(b.split()) // 2:])
               for a, b in zip(rest[:160], rest[1:161])]
    long_ones = [s for s in healthy if len(s.split()) >= 24][:8]
    synthetic = (healthy + real[:6]
                 + [_near_copy(s, k) for k, s in enumerate(long_ones)]
                 + ["As an AI language model, I cannot provide that; in conclusion, it is "
                    f"important to note that this answer number {k} is helpful." for k in range(8)]
                 + [f"0x{k:04x} 0xdeadbeef 0xcafebabe 0x{k * 7919:08x} ffff 0000 1111 {k}"
                    for k in range(8)])
    ids = [f"s{i}" for i in range(len(synthetic))]
    for pid, payload in zip(PAYLOAD_IDS, PAYLOADS):
        synthetic += [payload, payload]
        ids += [pid, pid + "-again"]
    return (pd.DataFrame({"id": [f"r{i}" for i in range(len(real))], "text": real}),
            pd.DataFrame({"id": ids, "text": synthetic}))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    real, synthetic = _corpus()
    out = tmp_path_factory.mktemp("report") / "out"
    result = run(real=real, synthetic=synthetic, config=Config(),
                 embedder=HashedNgramEmbedder(dim=256), out=out)
    page = (out / "report.html").read_text(encoding="utf-8")
    return {"result": result, "out": out, "html": page, "data": _page_data(page)}


@pytest.fixture(scope="module")
def no_embed_run(tmp_path_factory):
    real, synthetic = _corpus()
    out = tmp_path_factory.mktemp("report-noembed") / "out"
    result = run(real=real, synthetic=synthetic, config=Config(stages=["dedup", "mix"]), out=out)
    page = (out / "report.html").read_text(encoding="utf-8")
    return {"result": result, "out": out, "html": page, "data": _page_data(page)}


def _page_data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>',
                      page, re.S)
    assert found, "no data block"
    return json.loads(found.group(1))


# ----------------------------------------------------------------------------- the file

def test_every_section_is_there_once(full_run):
    for section in report_html.SECTIONS:
        assert full_run["html"].count(f'<section id="{section}">') == 1, section


def test_inline_data_cannot_end_its_script_element(full_run):
    page = full_run["html"]
    block = re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1)
    for char in "<>&\u2028\u2029":
        assert char not in block, repr(char)
    # Two script elements, ours, and nothing a record carried opens or closes another.
    assert page.lower().count("<script") == 2
    assert page.lower().count("</script") == 2
    # The payloads are in the data, whole, after the JSON round trip.
    texts = {r["text"] for r in full_run["data"]["records"]}
    assert PAYLOADS[0] in texts and PAYLOADS[3] in texts
    ids = {r["id"] for r in full_run["data"]["records"]}
    assert set(PAYLOAD_IDS) <= ids


def test_the_content_security_policy_admits_only_the_page_own_code(full_run):
    page = full_run["html"]
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert csp, "no CSP meta tag"
    policy = csp.group(1).replace("&#x27;", "'")
    assert policy.startswith("default-src 'none';")
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)

    def digest(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest(script)}';" in policy
    assert f"style-src 'sha256-{digest(style)}';" in policy
    assert "unsafe-inline" not in policy and "http" not in policy
    # Inline style attributes would be refused by this policy: the page has none.
    assert " style=" not in page


def test_the_page_loads_nothing_from_elsewhere(full_run):
    page = full_run["html"]
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|javascript:)""", page, re.I)
    assert "@import" not in page and "url(" not in page


def test_same_inputs_same_page():
    """Sampling is seeded and the CSP hashed, not random: a byte-identical page."""
    table, vectors = _table(300, 200)
    reject(table, np.arange(len(table)) >= 420, Reason.SHARE_CAP)
    pages = [report_html.to_html(table, _report(table), vectors, None, None) for _ in range(2)]
    assert pages[0] == pages[1]


def test_a_report_alone_gives_a_page_that_says_what_it_cannot_show(full_run):
    page = report_only_html(full_run["result"].report)
    assert "No map: this report was built without its records table." in page
    assert page.count("<section id=") == len(report_html.SECTIONS)


def test_report_json_keeps_its_contract_and_carries_no_page_data(full_run):
    report = json.loads((full_run["out"] / "report.json").read_text())
    assert set(report) == {"version", "synthgate_version", "config", "inputs", "output",
                           "rejections", "stages", "metrics", "gate", "details", "examples"}
    text = json.dumps(report)
    # The map's coordinates and the rejected sample live in the page only.
    assert '"x":' not in text and "nearest real record" not in text


def test_the_summary_names_reasons_and_clusters(full_run):
    data, page, report = full_run["data"], full_run["html"], full_run["result"].report
    assert report["rejections"].get("near_duplicate", 0) > 0
    summary = page.split('<section id="summary">')[1].split("</section>")[0]
    for reason in report["rejections"]:
        assert report_html.REASON_LABELS[reason][0] in summary
    verdict = "Gate passed" if report["gate"]["passed"] else "Gate failed"
    assert verdict in summary
    assert len(data["map"]["x"]) > 0 and data["map"]["groups"][0]["key"] == "real"


# ----------------------------------------------------------------------------- the view

def _table(n_real: int, n_synth: int, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = n_real + n_synth
    table = new_table([f"id{i}" for i in range(n)], ["real"] * n_real + ["synthetic"] * n_synth,
                      [f"record {i} about topic {i % 7} with words w{i % 13}" for i in range(n)])
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return table, vectors


def _report(table) -> dict:
    real = int((table["source"] == "real").sum())
    return {"version": 1, "synthgate_version": "t", "config": {"seed": 0, "stages": ["embed"]},
            "inputs": {"real": real, "synthetic": len(table) - real},
            "output": {"real": real, "synthetic": 0, "synthetic_share": 0.0},
            "rejections": {}, "stages": [], "metrics": {},
            "gate": {"passed": True, "checks": []}}


def test_samples_are_bounded_stratified_and_said(monkeypatch):
    monkeypatch.setattr(report_html, "MAP_POINTS", 300)
    monkeypatch.setattr(report_html, "REJECTED_SAMPLE", 40)
    table, vectors = _table(2000, 1500)
    synth = np.flatnonzero(table["source"] == "synthetic")
    reject(table, np.isin(np.arange(len(table)), synth[:1000]), Reason.SHARE_CAP)
    reject(table, np.isin(np.arange(len(table)), synth[1000:1005]), Reason.FORMULAIC)
    view = report_html.build_view(table, _report(table), vectors, np.ones(len(table), bool), None)
    assert len(view.map.x) == 300
    shown = {g.key: g.shown for g in view.map.groups}
    assert shown["formulaic"] == 5            # a small group is drawn whole
    assert sum(shown.values()) == 300
    assert len(view.rejected) == 40 and view.rejected_total == 1005
    reasons = [view.records[r.record].reasons[0] for r in view.rejected]
    assert reasons.count("formulaic") == 5 and reasons.count("share_cap") == 35
    page = report_html.render(view)
    assert "This page holds 40 of the 1,005 rejected records" in page
    assert "300 of 3,500 embedded records are drawn" in page
    # Without real clusters the clusters section says why instead of drawing nothing.
    assert "No clusters: the real clusters of this run were not handed" in page


def test_vectors_for_embedded_rows_only_give_the_same_view():
    table, vectors = _table(60, 40)
    embedded = np.arange(len(table)) % 3 != 0
    full = report_html.build_view(table, _report(table), vectors * embedded[:, None], embedded,
                                  None)
    compact = report_html.build_view(table, _report(table), vectors[embedded], embedded, None)
    assert full.map == compact.map and full.map.embedded == int(embedded.sum())
    with pytest.raises(ValueError, match="match neither"):
        report_html.build_view(table, _report(table), vectors[:5], embedded, None)


def test_rejected_records_are_shown_beside_what_they_matched():
    table, vectors = _table(30, 10)
    table["dup_of"] = [None] * 30 + ["id3"] + [None] * 9
    reject(table, np.arange(40) == 30, Reason.COPIES_REAL)
    vectors[35] = vectors[7]                                    # nearest real: id7
    reject(table, np.arange(40) == 35, Reason.OFF_DISTRIBUTION)
    view = report_html.build_view(table, _report(table), vectors, None, None)
    by_id = {view.records[r.record].id: r for r in view.rejected}
    copy, off = by_id["id30"].match, by_id["id35"].match
    assert copy.kind == "copy of real record" and view.records[copy.record].id == "id3"
    assert off.kind == "nearest real record" and view.records[off.record].id == "id7"
    assert off.similarity == pytest.approx(1.0, abs=1e-4)


def test_pca_is_deterministic_and_sign_fixed():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 8)) * np.array([5, 3, 1, 1, 1, 1, 1, 1])
    mean, axes, explained = report_html.pca_2d(x)
    _, flipped, _ = report_html.pca_2d(x[::-1])
    assert np.allclose(axes, flipped, atol=1e-5)
    assert abs(axes[0, 0]) > 0.95 and abs(axes[1, 1]) > 0.95
    assert explained[0] > explained[1] > 0.1


def test_top_terms_are_what_sets_a_cluster_apart():
    docs = [["the cat sat on the mat", "a cat and a kitten purr", "cat food for the cat"],
            ["the stock market fell", "market prices and stock trading", "the market rose"]]
    terms = report_html.top_terms(docs, 2)
    assert terms[0][0] == "cat" and terms[1][0] == "market"
    assert "the" not in terms[0] + terms[1]


# ----------------------------------------------------------------------------- the browser

def chromium(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
         "--virtual-time-budget=5000", *extra, url],
        capture_output=True, text=True, timeout=120)


def dump_dom(page: Path, fragment: str, tmp_path: Path) -> str:
    proc = chromium(page.as_uri() + fragment, tmp_path, "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "<html" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


class _Elements(HTMLParser):
    """Every element of a serialized DOM: (tag, attributes)."""

    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


def _elements(dom: str) -> _Elements:
    parser = _Elements()
    parser.feed(dom)
    return parser


def _attr(dom: str, element_id: str, name: str) -> str:
    tag = re.search(rf'<[^>]*\bid="{element_id}"[^>]*>', dom)
    assert tag, f"no #{element_id}"
    value = re.search(rf'\b{name}="([^"]*)"', tag.group(0))
    assert value, f"#{element_id} has no {name}"
    return value.group(1)


URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "srcdoc", "data",
                  "poster", "background", "ping"}


def _assert_nothing_injected(dom: str, built: str) -> None:
    parsed = _elements(dom)
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)    # the document's, in <head>
    assert title == re.search(r"<title>(.*?)</title>", built).group(1)
    assert "pwned" not in title
    tags = [t for t, _ in parsed.elements]
    assert tags.count("script") == 2 and tags.count("style") == 1
    for bad in ("img", "iframe", "object", "embed", "form", "base", "link"):
        assert bad not in tags, bad
    for tag, attrs in parsed.elements:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in URL_ATTRIBUTES:
                assert not (value or "").strip().lower().startswith("javascript:"), (tag, name)
    # The page's own element ids, and no other, are in the built file.
    built_ids = set(re.findall(r"""\bid=["']([^"']+)["']""", built))
    assert {a["id"] for _, a in parsed.elements if "id" in a} <= built_ids


@needs_chromium
def test_the_page_runs_in_a_browser(full_run, tmp_path):
    page, data = full_run["out"] / "report.html", full_run["data"]
    dom = dump_dom(page, "", tmp_path)
    assert 'data-ready="1"' in dom, "the page script did not finish"
    for section in report_html.SECTIONS:
        assert f'id="{section}"' in dom
    points = int(_attr(dom, "map-canvas", "data-points"))
    assert points == len(data["map"]["x"]) > 100
    assert int(_attr(dom, "rej-list", "data-matching")) == len(data["rejected"])
    assert int(_attr(dom, "rej-list", "data-shown")) == min(20, len(data["rejected"]))
    _assert_nothing_injected(dom, full_run["html"])


@needs_chromium
def test_the_rejections_filter_by_reason_from_the_url(full_run, tmp_path):
    data = full_run["data"]
    records = data["records"]
    near = [r for r in data["rejected"] if "near_duplicate" in records[r["record"]]["reasons"]]
    assert near, "the corpus plants near duplicates"
    dom = dump_dom(full_run["out"] / "report.html", "#reason=near_duplicate", tmp_path)
    assert int(_attr(dom, "rej-list", "data-matching")) == len(near)
    cards = re.findall(r'<article class="rej" data-reasons="([^"]*)"', dom)
    assert len(cards) == min(20, len(near))
    assert all("near_duplicate" in c.split() for c in cards)
    # Sorted by score, highest first: the similarities on the page descend.
    dom = dump_dom(full_run["out"] / "report.html", "#reason=near_duplicate&sort=score-desc",
                   tmp_path)
    scores = [float(s) for s in re.findall(r'similarity to the record it repeats: ([0-9.]+)', dom)]
    assert scores and scores == sorted(scores, reverse=True)


@needs_chromium
def test_payload_records_stay_text(full_run, tmp_path):
    for query in ("onerror", "script", "javascript"):
        dom = dump_dom(full_run["out"] / "report.html", f"#q={query}", tmp_path)
        assert 'data-ready="1"' in dom
        assert int(_attr(dom, "rej-list", "data-matching")) >= 1
        _assert_nothing_injected(dom, full_run["html"])
    # The payload is on the page as the text it is.
    assert "&lt;img src=x onerror=" in dom or "&lt;/script&gt;" in dom


@needs_chromium
def test_without_embeddings_the_page_says_why(no_embed_run, tmp_path):
    dom = dump_dom(no_embed_run["out"] / "report.html", "", tmp_path)
    assert 'data-ready="1"' in dom
    assert _attr(dom, "map-canvas", "data-points") == "0"
    assert "No map: the embed stage did not run in this run" in dom
    assert "No clusters: the embed stage did not run" in dom
    rejected = len(no_embed_run["data"]["rejected"])
    assert rejected > 0 and int(_attr(dom, "rej-list", "data-matching")) == rejected
    _assert_nothing_injected(dom, no_embed_run["html"])


def _png_colours(path: Path) -> int:
    """Distinct byte values in a PNG's decompressed pixel rows: a blank page has a handful."""
    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(blob):
        length = int.from_bytes(blob[pos:pos + 4], "big")
        kind = blob[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += blob[pos + 8:pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat)))


@needs_chromium
def test_one_screenshot_per_section(full_run, tmp_path):
    """For a person to look at (test-artifacts/report-html/), not a pixel comparison."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    heights = {"summary": 900, "map": 900, "clusters": 1300, "rejections": 1300, "gate": 1200,
               "metrics": 1400, "stages": 1000}
    for section, height in heights.items():
        shot = ARTIFACTS / f"{section}.png"
        shot.unlink(missing_ok=True)
        proc = chromium((full_run["out"] / "report.html").as_uri() + f"#section={section}",
                        tmp_path, f"--window-size=1280,{height}", f"--screenshot={shot}")
        assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
        assert _png_colours(shot) > 32, f"{section}: the screenshot is blank"
    shutil.copy(full_run["out"] / "report.html", ARTIFACTS / "report.html")
