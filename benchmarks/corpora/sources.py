"""Readers for the packaged texts the detection corpus is built from.

Every reader takes its text from a Debian package (or the running Python's standard library)
and raises SourceMissing, naming the package to install, when the files are not there: the
corpus must never be built silently from less than it says.
"""

from __future__ import annotations

import gettext
import gzip
import html
import re
import sysconfig
from pathlib import Path

FORTUNES = Path("/usr/share/games/fortunes")
DICTD = Path("/usr/share/dictd")
WORDNET = Path("/usr/share/wordnet")
DEBIAN_REFERENCE = Path("/usr/share/debian-reference")
APT_ARABIC = Path("/usr/share/locale/ar/LC_MESSAGES/apt.mo")

# English fortune files of `fortunes-min` and `fortunes` that hold prose, quotations and
# verse (not ASCII art, IRC logs or Zippy's non sequiturs). Listed by name: the same
# directory also holds the Italian and Chinese files of fortunes-it and fortunes-zh.
ENGLISH_FORTUNES = {
    "fortunes-min": ["fortunes", "literature", "riddles"],
    "fortunes": ["art", "computers", "cookie", "definitions", "education", "food", "humorists",
                 "kids", "law", "love", "magic", "medicine", "men-women", "miscellaneous",
                 "news", "people", "pets", "platitudes", "politics", "science", "songs-poems",
                 "sports", "wisdom", "work", "linux", "paradoxum", "goedel", "pratchett",
                 "startrek", "tao"],
}
FOREIGN_FORTUNES = {"de": ("fortunes-de", FORTUNES / "de"),
                    "es": ("fortunes-es", FORTUNES / "es"),
                    "it": ("fortunes-it", FORTUNES / "it"),
                    "ru": ("fortunes-ru", FORTUNES / "ru")}
CHINESE_FORTUNES = ("chinese", "tang300", "song100")       # fortunes-zh

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
WORD = re.compile(r"\w+(?:['’]\w+)*")


class SourceMissing(RuntimeError):
    """A packaged source the corpus needs is not installed."""


def require(path: Path, package: str) -> Path:
    if not path.exists():
        raise SourceMissing(f"{path} not found: install the Debian package `{package}` "
                            f"(apt-get install {package})")
    return path


def words(text: str) -> list[str]:
    return WORD.findall(text)


def read_fortune_file(path: Path) -> list[str]:
    """One string per cookie (cookies are separated by lines holding a single %)."""
    text = ANSI.sub("", path.read_text(encoding="utf-8", errors="replace"))
    return [c.strip("\n") for c in re.split(r"^%\s*$", text, flags=re.M) if c.strip()]


def tidy(text: str) -> str:
    """Tabs and runs of spaces become one space; line breaks stay (verse keeps its lines)."""
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def english_fortunes() -> list[tuple[str, str]]:
    """(origin, text) for every English cookie."""
    out = []
    for package, names in ENGLISH_FORTUNES.items():
        for name in names:
            path = require(FORTUNES / name, package)
            out += [(f"fortunes/{name}", tidy(c)) for c in read_fortune_file(path)]
    return out


# --- dictd dictionaries (dict-jargon, dict-foldoc, dict-gcide) -------------------------------

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64(s: str) -> int:
    n = 0
    for c in s:
        n = n * 64 + _B64.index(c)
    return n


def dictd_entries(name: str) -> list[tuple[str, str]]:
    """(headword, raw entry) of a dictd database, in index order, one per distinct offset."""
    package = f"dict-{name}"
    data = gzip.open(require(DICTD / f"{name}.dict.dz", package)).read()
    seen, out = set(), []
    for line in require(DICTD / f"{name}.index", package).read_text(encoding="utf-8").splitlines():
        head, off, length = line.split("\t")[:3]
        if head.startswith("00-database") or off in seen:
            continue
        seen.add(off)
        start = _b64(off)
        out.append((head, data[start:start + _b64(length)].decode("utf-8", errors="replace")))
    return out


def _unbrace(text: str) -> str:
    return re.sub(r"[{}]", "", text)


def _first_paragraph(body: str) -> str:
    paras = [p for p in re.split(r"\n\s*\n", body) if p.strip()]
    return " ".join(paras[0].split()) if paras else ""


def jargon_records() -> list[tuple[str, str]]:
    """'headword: first paragraph of the definition' from the Jargon File."""
    out = []
    for head, raw in dictd_entries("jargon"):
        lines = raw.split("\n")
        body = "\n".join(lines[1:])
        body = re.sub(r"^\s*/[^/\n]+/,?[^\n]*\n", "", body)            # pronunciation line
        body = re.sub(r"^\s*(n|v|adj|adv|excl|interj|vt|vi)\.[^\n]*\n", "", body.lstrip("\n"))
        para = _unbrace(_first_paragraph(body))
        para = re.sub(r"^\[[^\]]*\]\s*", "", para)                      # [etymology]
        para = re.sub(r"^1\.\s*((n|v|adj|adv|vt|vi)\.\s*)?", "", para)
        if para:
            out.append(("dict/jargon", f"{lines[0].strip()}: {para}"))
    return out


def foldoc_records() -> list[tuple[str, str]]:
    """'headword: first paragraph' from FOLDOC, without category tags and link braces."""
    out = []
    for head, raw in dictd_entries("foldoc"):
        parts = re.split(r"\n\s*\n", raw, maxsplit=1)
        if len(parts) < 2:
            continue
        para = _first_paragraph(parts[1])
        para = re.sub(r"^\d+\.\s*", "", para)
        para = re.sub(r"<[^>]*>\s*", "", para)
        para = _unbrace(re.sub(r"\{\(?(https?|ftp)://[^}]*\}", "", para)).strip()
        if para and not para.startswith("("):
            out.append(("dict/foldoc", f"{parts[0].splitlines()[0].strip()}: {para}"))
    return out


def gcide_records() -> list[tuple[str, str]]:
    """'Headword, pos. definition' from the Webster 1913 entries of GCIDE (first sense).

    Pronunciations (backslashed), etymologies and inflections (bracketed) and cross-reference
    braces are removed; bare cross-references ("Same as X", "See X") are skipped.
    """
    out = []
    for head, raw in dictd_entries("gcide"):
        if "[1913 Webster]" not in raw:
            continue
        text = " ".join(raw.split("[1913 Webster]")[0].split())
        text = re.sub(r"\\[^\\]*\\", "", text)
        text = re.sub(r"\[[^\]]*\]", "", text)
        text = re.sub(r"\((?:\?|[0-9;, ])+\)", "", text)
        text = re.sub(r"\s+([,.;])", r"\1", " ".join(_unbrace(text).split()))
        text = re.sub(r"^([^,]+), ((?:[a-z]+\. (?:& )?)*)1\. ", r"\1, \2", text)
        if re.search(r"\b(Same as|See|Obs\.)", text) and len(text.split()) < 14:
            continue
        out.append(("dict/gcide", text))
    return out


# --- foreign languages and other scripts ---------------------------------------------------

STOPWORDS = {
    "en": set("the and of to a in is it that you he was for on are with as i his they be at "
              "one have this from or had by but not what all were we when your can said there "
              "an which she do their if will each about how up out them then".split()),
    "de": set("der die das und ist nicht sie ich es ein eine zu den mit sich von auf des dem "
              "im auch wenn aber wie nur noch man wird sind hat".split()),
    "es": set("el la los las de y que en un una es por con no se lo para del al como su más "
              "pero sus le ya o fue este ha si".split()),
    "it": set("il lo la i gli le di e che un una è per non in del della con si da come ma "
              "sono ha al anche più se".split()),
    "fr": set("le la les de des et est une un pour dans que qui ne pas vous sur au du ce "
              "avec par il elle sont en se plus".split()),
}


def looks_like(text: str, lang: str) -> bool:
    """A paragraph mostly in `lang`: its stop words outnumber English ones three to one.

    The foreign packages carry some untranslated English paragraphs; those would be
    mislabelled as off-distribution.
    """
    toks = [w.lower() for w in words(text)]
    own = sum(t in STOPWORDS[lang] for t in toks)
    english = sum(t in STOPWORDS["en"] for t in toks)
    return own >= 3 and own >= 3 * english


def foreign_fortunes(lang: str) -> list[str]:
    package, folder = FOREIGN_FORTUNES[lang]
    require(folder, package)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.suffix in (".dat", ".u8")
                   and "off" not in p.relative_to(folder).parts)      # not the offensive sets
    out = []
    for path in files:
        out += [tidy(c) for c in read_fortune_file(path)]
    if lang == "ru":
        return [t for t in out if len(re.findall(r"[\u0400-\u04ff]", t)) > len(t) / 3]
    return [t for t in out if looks_like(t, lang)]


def french_paragraphs() -> list[str]:
    """Paragraphs of the French Debian Reference (debian-reference-fr), French ones only."""
    folder = require(DEBIAN_REFERENCE, "debian-reference-fr")
    files = sorted(folder.glob("*.fr.html"))
    if not files:
        raise SourceMissing(f"no *.fr.html in {folder}: apt-get install debian-reference-fr")
    out = []
    for path in files:
        for p in re.findall(r"<p>(.*?)</p>", path.read_text(encoding="utf-8"), re.S):
            text = " ".join(html.unescape(re.sub(r"<[^>]+>", "", p)).split())
            if looks_like(text, "fr"):
                out.append(text)
    return out


def chinese_fortunes() -> list[str]:
    out = []
    for name in CHINESE_FORTUNES:
        path = require(FORTUNES / name, "fortunes-zh")
        for c in read_fortune_file(path):
            text = tidy(c)
            if len(re.findall(r"[\u4e00-\u9fff]", text)) > len(text) / 3:
                out.append(text)
    return out


def arabic_messages() -> list[str]:
    """Arabic sentences: the Arabic translation of apt's messages (package `apt`).

    No Debian package carries Arabic prose small enough to install for this; apt's message
    catalogue is on every Debian system. Format placeholders are removed.
    """
    path = require(APT_ARABIC, "apt")
    with path.open("rb") as fh:
        catalog = gettext.GNUTranslations(fh)._catalog           # noqa: SLF001 (stdlib type)
    out = []
    for key, value in sorted(catalog.items(), key=lambda kv: str(kv[0])):
        if not key or not isinstance(value, str):
            continue
        text = " ".join(re.sub(r"%[-0-9.]*l?[sdiuxc]|%%|\\n", " ", value).split())
        if len(re.findall(r"[\u0600-\u06ff]", text)) > len(text) / 3 and len(text.split()) >= 3:
            out.append(text)
    return out


def python_sources() -> list[tuple[str, str]]:
    """(module name, source) of the running Python's standard library, top-level modules."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py") if not p.name.startswith("_"))
    if len(files) < 50:
        raise SourceMissing(f"the Python standard library at {stdlib} has {len(files)} "
                            f"modules; expected a full installation")
    return [(p.stem, p.read_text(encoding="utf-8", errors="replace")) for p in files]
