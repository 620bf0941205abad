"""Real English sentences for the embedding benchmarks, from Debian packages (not sample_data).

    apt-get install python3-doc fortunes fortunes-min
    python benchmarks/corpus.py            # writes .bench-data/sentences.jsonl (git-ignored)

Sources, each read from what the package installs:
- python3-doc: the paragraphs of the Python documentation's HTML pages (library reference,
  tutorial, how-tos, FAQ...), split into sentences;
- fortunes / fortunes-min: the fortune cookies (quotes, jokes, literature), one record each.

Each record is {"id", "source" (python-docs or fortunes), "text"}; sentences of 8-60 words,
deduplicated after case folding, in a fixed order: the same packages give the same file.
"""

from __future__ import annotations

import argparse
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".bench-data"
PYTHON_DOCS = Path("/usr/share/doc/python3-doc/html")
FORTUNES = Path("/usr/share/games/fortunes")


class _Paragraphs(HTMLParser):
    """The text of each <p> element of a page (inline markup kept as its text)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._depth = 0
        self._parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "p":
            self._depth += 1

    def handle_endtag(self, tag):
        if tag == "p" and self._depth:
            self._depth -= 1
            if not self._depth:
                self.paragraphs.append("".join(self._parts))
                self._parts = []

    def handle_data(self, data):
        if self._depth:
            self._parts.append(data)


def _sentences(text: str) -> list[str]:
    text = re.sub(r"\s+", " ", html.unescape(text)).strip()
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text)]


def python_doc_sentences() -> list[str]:
    if not PYTHON_DOCS.is_dir():
        raise SystemExit(f"{PYTHON_DOCS} not found: apt-get install python3-doc")
    out = []
    for page in sorted(PYTHON_DOCS.rglob("*.html")):
        if "_static" in page.parts or "whatsnew" in page.parts:
            continue
        parser = _Paragraphs()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        for paragraph in parser.paragraphs:
            out += _sentences(paragraph)
    return out


def fortunes() -> list[str]:
    if not FORTUNES.is_dir():
        raise SystemExit(f"{FORTUNES} not found: apt-get install fortunes fortunes-min")
    out = []
    for path in sorted(FORTUNES.iterdir()):
        if path.suffix or not path.is_file() or path.name.endswith("-o"):
            continue   # .dat indexes, .u8 links, offensive collections
        text = path.read_text(encoding="utf-8", errors="replace")
        out += [re.sub(r"\s+", " ", c).strip() for c in text.split("\n%\n")]
    return out


def build(min_words: int = 8, max_words: int = 60) -> list[dict]:
    seen, records = set(), []
    for source, texts in (("python-docs", python_doc_sentences()), ("fortunes", fortunes())):
        for text in texts:
            key = text.casefold()
            if min_words <= len(text.split()) <= max_words and key not in seen:
                seen.add(key)
                records.append({"id": f"{source}-{len(records)}", "source": source,
                                "text": text})
    return records


def load(path: Path = DATA / "sentences.jsonl") -> list[dict]:
    """The corpus, built first when absent."""
    if not path.exists():
        write(path)
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def write(path: Path = DATA / "sentences.jsonl") -> None:
    records = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    counts = {}
    for r in records:
        counts[r["source"]] = counts.get(r["source"], 0) + 1
    print(f"{path}: {len(records):,} records {counts}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    write()
