"""report.html's later parts: the gate read from the checks' own reference and interval, the
share of synthetic records rejected for quality, the off-distribution signals (which fired,
their bars, per-signal histograms), the benchmark contamination block, and the rejection cards'
test, signal and benchmark item. Built from real runs (the hashed embedder stands in for the
model) and opened in headless Chromium; payloads in records and in a benchmark item's id stay
text.
"""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest

from synthgate import Config, run
from synthgate import report_html
from synthgate.records import Reason, reject

from conftest import HashedNgramEmbedder
from test_report_html import (PAYLOADS, _assert_nothing_injected, _attr, _corpus, _page_data,
                              _report, _table, dump_dom, needs_chromium)

BENCH_PAYLOAD_ID = '<img src=x onerror="document.title=1">'


def _section(page: str, name: str) -> str:
    return page.split(f'<section id="{name}">')[1].split("</section>")[0]


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """The browser tests' corpus with a benchmark whose items two real records and a payload
    record carry (one item's id is itself a payload)."""
    real, synthetic = _corpus()
    items = pd.DataFrame({"id": ["q-real-1", "q-real-2", BENCH_PAYLOAD_ID],
                          "text": [real["text"][5], real["text"][40], PAYLOADS[1]]})
    out = tmp_path_factory.mktemp("report-bench") / "out"
    result = run(real=real, synthetic=synthetic, benchmark={"evalset": items},
                 embedder=HashedNgramEmbedder(dim=256), out=out)
    page = (out / "report.html").read_text(encoding="utf-8")
    return {"result": result, "out": out, "html": page, "data": _page_data(page)}


# ----------------------------------------------------------------------------- the file

def test_the_contamination_block_says_what_was_removed(bench_run):
    report = bench_run["result"].report
    per = report["details"]["decontaminate"]["per_benchmark"]["evalset"]
    assert per["items_seen"] >= 2 and per["records_removed"]["real"] >= 2
    summary = _section(bench_run["html"], "summary")
    assert "<h3 id='contamination'>Benchmark contamination</h3>" in summary
    row = re.search(r"<tr><td><b>evalset</b></td>(.*?)</tr>", summary).group(1)
    cells = re.findall(r"<td class='num'>([^<]*)</td>", row)
    assert cells[:5] == [str(per["items"]), str(per["items_seen"]),
                         str(per["records_removed"]["real"]),
                         str(per["records_removed"]["synthetic"]), str(per["by_test"]["ngram"])]
    # Each example is listed with its record, the item and the matched span, escaped.
    assert summary.count("<div class='span'>matched: <q>") == len(per["examples"])
    for ex in per["examples"]:
        assert f"<b>{html.escape(ex['id'])}</b> carries <code>{html.escape(ex['item'])}</code>" \
            in summary
    assert BENCH_PAYLOAD_ID not in bench_run["html"]
    assert "evalset:&lt;img src=x onerror=" in summary


def test_no_contamination_block_without_a_benchmark():
    table, vectors = _table(40, 20)
    page = report_html.to_html(table, _report(table), vectors, None, None)
    assert "Benchmark contamination" not in page


def test_the_gate_reads_the_hold_out_from_the_check_not_its_message():
    """A collapse check carries `reference` and `interval`; its message's numbers are prose."""
    table, vectors = _table(60, 40)
    report = _report(table)
    report["gate"] = {"passed": False, "checks": [
        {"name": "embed.recall", "passed": False, "observed": 0.41, "threshold": 0.6,
         "message": "recall 0.41 < 0.6 (real hold-out 0.111, 90% interval [0.1, 0.2])",
         "reference": 0.93, "interval": [0.88, 0.97]}]}
    page = report_html.to_html(table, report, vectors, None, None)
    gate = _section(page, "gate")
    assert "<td class='num'>0.93 <span class='iv'>[0.88–0.97]</span></td>" in gate
    assert "where a real sample of the same size reaches 0.93" in _section(page, "summary")
    # A check without them shows no hold-out, whatever its message says.
    report["gate"]["checks"][0] = {k: v for k, v in report["gate"]["checks"][0].items()
                                   if k not in ("reference", "interval")}
    page = report_html.to_html(table, report, vectors, None, None)
    assert "0.111" not in re.sub(r"<td class='msg'>.*?</td>", "", _section(page, "gate"))
    assert "where a real sample" not in _section(page, "summary")


def test_a_degenerating_generator_is_said_with_its_counts():
    table, vectors = _table(40, 60)
    synth = np.flatnonzero(table["source"] == "synthetic")
    reject(table, np.isin(np.arange(len(table)), synth[:30]), Reason.NEAR_DUPLICATE)
    reject(table, np.isin(np.arange(len(table)), synth[25:40]), Reason.FORMULAIC)
    report = _report(table)
    report["gate"] = {"passed": False, "checks": [
        {"name": "synthetic.rejected_share", "passed": False, "observed": 0.6667,
         "threshold": 0.3, "message": "40 of 60 valid synthetic records rejected"}]}
    view = report_html.build_view(table, report, vectors, None, None)
    assert (view.synthetic_valid, view.synthetic_quality_rejected) == (60, 40)
    assert view.quality_reasons["near_duplicate"] == 30 and view.quality_reasons["formulaic"] == 15
    page = report_html.render(view)
    summary = _section(page, "summary")
    assert "the generator is degenerating, 67% of the valid synthetic records" in summary
    assert ("40 of the 60 valid synthetic records (67%) were rejected for quality, where at "
            "most 30% may be: 30 near duplicates, 15 formulaic") in summary
    assert "Rejected for quality: <b>40</b> of 60 valid synthetic records" in summary
    gate = _section(page, "gate")
    assert "Share of the valid synthetic records rejected for quality" in gate
    assert "<svg class=\"scale\"" in gate


def test_stages_show_which_off_distribution_signal_fired(bench_run):
    signals = bench_run["result"].report["details"]["embed"]["off_distribution_signals"]
    assert sum(signals["fired"].values()) > 0, "the corpus plants off-distribution records"
    stages = _section(bench_run["html"], "stages")
    assert "<h3 id='off-distribution'>Off-distribution: which signal fired</h3>" in stages
    table = stages.split("<table class='grid signals'>")[1].split("</table>")[0]
    rows = re.findall(r"<tr class='[^']*'><td>.*?<code>([^<]+)</code></td><td class='num'>"
                      r"[^<]*</td><td class='num'>([^<]+)</td>", table)
    assert {name for name, _ in rows} == set(signals["thresholds"])
    fired = {name: int(n) for name, n in rows if n != "–"}
    assert fired == signals["fired"]
    # The most frequent signal heads the table; one histogram per raw signal.
    assert rows[0][0] == max(signals["fired"], key=signals["fired"].get)
    assert stages.count("<figure class='hist") == len(signals["distributions"])
    # Drawn once: the generic details of the embed stage leave it out.
    assert stages.count("off_distribution_signals") == 0


def test_cluster_terms_are_synthgate_words():
    docs = [["Data, data; DATA. the café", "CAFÉ and data", "東京 東京 tokyo"],
            ["the stock market fell", "market prices and stock trading", "the market rose"]]
    terms = report_html.top_terms(docs, 5)
    # One normalized word however it is cased or punctuated; an unspaced script's characters
    # are words of their own.
    assert terms[0][0] == "data" and "café" in terms[0]
    assert "東" in terms[0] and "京" in terms[0]
    assert terms[1][0] == "market"


def test_page_data_names_signals_and_tests(bench_run):
    data = bench_run["data"]
    carried = {r["scores"].get("off_distribution_signal") for r in data["records"]} - {None}
    assert carried and set(data["signals"]) == carried
    assert all(data["signals"][s] for s in carried)
    assert set(data["tests"]) >= {"exact", "jaccard", "cosine"}


# ----------------------------------------------------------------------------- the browser

@needs_chromium
def test_rejection_cards_show_the_test_the_signal_and_the_benchmark_item(bench_run, tmp_path):
    page = bench_run["out"] / "report.html"
    dom = dump_dom(page, "#reason=off_distribution", tmp_path)
    assert int(_attr(dom, "rej-list", "data-matching")) > 0
    assert '<span class="fk">signal that fired: </span>' in dom
    dom = dump_dom(page, "#reason=near_duplicate", tmp_path)
    assert '<span class="fk">matched by: </span>' in dom
    dom = dump_dom(page, "#reason=benchmark_overlap", tmp_path)
    cards = re.findall(r'<article class="rej" data-reasons="([^"]*)"', dom)
    assert cards and all("benchmark_overlap" in c.split() for c in cards)
    assert '<code class="item">evalset:q-real-1</code>' in dom or \
        '<code class="item">evalset:q-real-2</code>' in dom
    # The payload item id is on the page as text only.
    assert "evalset:&lt;img src=x onerror=" in dom
    _assert_nothing_injected(dom, bench_run["html"])


@needs_chromium
def test_the_page_with_a_benchmark_runs_and_stays_safe(bench_run, tmp_path):
    dom = dump_dom(bench_run["out"] / "report.html", "", tmp_path)
    assert 'data-ready="1"' in dom
    for section in report_html.SECTIONS:
        assert f'id="{section}"' in dom
    assert 'id="contamination"' in dom and 'id="off-distribution"' in dom
    _assert_nothing_injected(dom, bench_run["html"])
