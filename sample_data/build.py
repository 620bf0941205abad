"""Rebuilds the sample data: real records from a public-domain book, synthetic records with
every defect synthgate rejects planted among healthy ones.

    apt-get install dict-devil          # once: the source text (public domain, see README.md)
    python sample_data/build.py         # writes real.jsonl, synthetic.jsonl, collapsed.jsonl,
                                        # instructions.jsonl, chat.jsonl beside this script

The real records are entries of Ambrose Bierce's "The Devil's Dictionary" (1911). The healthy
synthetic records come from a word-level Markov chain trained on the real ones (generation 1)
and from a second chain trained on generation 1's output (generation 2: a model trained on
its own output, the set-up whose drift synthgate exists to catch). `collapsed.jsonl` carries
the same self-training on for COLLAPSE_ROUNDS rounds, each chain trained on everything the one
before it emitted, and holds the last round's output as it comes: a generation that has
collapsed onto the phrases its ancestors happened to repeat. Everything is seeded: two runs
write byte-identical files.

Every synthetic record names its planted `defect` ("healthy" when there is none) and, for a
copy, duplicate or paraphrase, the id it was made from (`variant_of`), so a test or a person
can check each defect against the decision log.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import string
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
DICT_DATA = Path("/usr/share/dictd/devil.dict.dz")   # dictzip = gzip with an index
DICT_INDEX = Path("/usr/share/dictd/devil.index")

SEED = 20240601
N_REAL = 400
MIN_WORDS, MAX_WORDS = 20, 200        # what a fine-tuning paragraph looks like
N_GEN1, N_GEN2 = 360, 120             # healthy synthetic: together more than the cap admits
MAX_OVERLAP = 0.25                    # a healthy record shares less than this with any other
# collapsed.jsonl: the generation of this round (the real records are round 0), each round's
# chain trained on N_GEN1 outputs of the one before, and as many records as the healthy ones.
COLLAPSE_ROUNDS = 12
N_COLLAPSED = N_GEN1 + N_GEN2

# Period entries built on ethnic or racial caricature are left out of the sample, by the
# dictionary index's headword (found by reading the entries).
EXCLUDED_HEADWORDS = frozenset({
    "AFRICAN", "ALLAH", "BEARD", "CREDITOR", "DANGER", "ELECTRICITY", "FEAST", "FREEMASONS",
    "FROG", "FUNERAL", "GNU", "GUNPOWDER", "HATCHET", "HEATHEN", "HEBREW", "HOG", "HOURI",
    "JEWSHARP", "JOSSSTICKS", "KORAN", "MINSTREL", "MUMMY", "NEGRO", "PICKANINNY", "PIGMY",
    "PORTUGUESE", "REDSKIN", "REPARTEE", "SABBATH", "SATYR", "SEVERALTY", "TSETSE FLY",
    "TZETZE FLY", "ZANZIBARI"})

HEADER = re.compile(r"^(?P<head>[A-Z][^,\n]*),\s*(?P<pos>(?:[a-z]+\.\s?)+)\s*")

# Entries paraphrased below (meaning kept, words changed): always among the real records.
PARAPHRASES = {
    "ACQUAINTANCE": "ACQUAINTANCE, n. Someone we know well enough to ask for a loan, yet not "
                    "well enough to give one. A level of friendship called slight when the person "
                    "is poor or unknown, and close when he is wealthy or celebrated.",
    "ALLIANCE": "ALLIANCE, n. In world affairs, the partnership of two robbers whose hands are "
                "pushed so far into one another's pockets that neither can rob a third party "
                "on his own.",
    "BOUNDARY": "BOUNDARY, n. In the geography of politics, an invented line between two "
                "countries that divides the invented rights of the first from the invented "
                "rights of the second.",
    "COMPROMISE": "COMPROMISE, n. A settlement of opposing interests that lets each opponent "
                  "enjoy believing he has received what he did not deserve, while he loses "
                  "nothing but what was rightfully his own.",
    "CYNIC": "CYNIC, n. A scoundrel whose defective eyesight shows him the world as it really "
             "is, and not as it should be. That is why the Scythians used to pull out a cynic's "
             "eyes: to correct his sight.",
    "ECONOMY": "ECONOMY, n. Buying the cask of whisky you have no use for with the money meant "
               "for the cow you cannot pay for.",
    "HOSPITALITY": "HOSPITALITY, n. The virtue that moves us to give meals and a bed to "
                   "particular people who need neither meals nor a bed.",
    "INTERPRETER": "INTERPRETER, n. Someone who lets two people of different tongues "
                   "understand one another by telling each of them what it would have profited "
                   "the interpreter for the other to have said.",
}

# Words swapped in to make near-copies: a few words changed, the rest verbatim.
SWAPS = ["curious", "ancient", "peculiar", "modest", "notable", "ordinary", "solemn", "trifling"]


# ----------------------------------------------------------------------------- source

def _b64(value: str) -> int:
    """dictd index numbers are base 64 with this alphabet."""
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
    n = 0
    for ch in value:
        n = n * 64 + alphabet.index(ch)
    return n


def read_entries() -> list[tuple[str, str]]:
    """(headword, entry text) for every entry of the dictionary, in the book's order."""
    if not (DICT_DATA.exists() and DICT_INDEX.exists()):
        sys.exit(f"{DICT_DATA} not found: install the source with `apt-get install dict-devil`")
    data = gzip.decompress(DICT_DATA.read_bytes())
    entries = []
    for line in DICT_INDEX.read_text(encoding="utf-8").splitlines():
        word, offset, length = line.split("\t")
        if word.startswith("00database"):
            continue
        start = _b64(offset)
        entries.append((word, data[start:start + _b64(length)].decode("utf-8")))
    return entries


def clean(entry: str) -> str:
    """Prose lines joined into paragraphs; verse keeps its line breaks, not its indentation."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", entry.strip()):
        lines = block.split("\n")
        verse = len(lines) > 1 and all(ln.startswith("    ") for ln in lines[1:])
        if verse:
            paragraphs.append("\n".join(ln.strip() for ln in lines))
        else:
            paragraphs.append(re.sub(r"\s+", " ", block).strip())
    # The scan hyphenates across line ends ("ill- smelling"): rejoin those words.
    return re.sub(r"(\w)- (\w)", r"\1-\2", "\n\n".join(paragraphs))


def words(text: str) -> list[str]:
    return text.split()


def shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    toks = [w.strip(string.punctuation).lower() for w in text.split()]
    toks = [t for t in toks if t]
    return {tuple(toks[i:i + n]) for i in range(max(1, len(toks) - n + 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


# ----------------------------------------------------------------------------- real

def select_real(entries: list[tuple[str, str]], rng: random.Random
                ) -> tuple[list[dict], list[tuple[str, str]]]:
    """N_REAL entries of fine-tuning length, paraphrase targets included; the rest are
    returned so their headwords can title synthetic records."""
    seen_texts, usable, spare = set(), [], []
    for word, entry in entries:
        text = clean(entry)
        if text in seen_texts:   # the index lists one entry twice
            continue
        seen_texts.add(text)
        if word.upper() in EXCLUDED_HEADWORDS:
            continue
        if MIN_WORDS <= len(words(text)) <= MAX_WORDS and HEADER.match(text):
            usable.append((word, text))
        else:
            spare.append((word, text))
    forced = [u for u in usable if u[0].upper() in PARAPHRASES]
    others = [u for u in usable if u[0].upper() not in PARAPHRASES]
    rng.shuffle(others)
    chosen = forced + others[:N_REAL - len(forced)]
    spare += others[N_REAL - len(forced):]
    chosen.sort(key=lambda u: u[0])
    real = [{"id": f"devil-{re.sub(r'[^a-z0-9]+', '-', w.lower()).strip('-')}",
             "headword": w.upper(), "text": t, "generation": 0} for w, t in chosen]
    return real, spare


# ----------------------------------------------------------------------------- Markov

END = "\0"


class Markov:
    """A word bigram-state Markov chain: the next word given the two before it."""

    def __init__(self, bodies: list[str]):
        self.next: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.starts: list[tuple[str, str]] = []
        for body in bodies:
            toks = words(body)
            if len(toks) < 3:
                continue
            self.starts.append((toks[0], toks[1]))
            for a, b, c in zip(toks, toks[1:], toks[2:] + [END]):
                self.next[(a, b)].append(c)

    def generate(self, rng: random.Random, max_words: int = 110) -> list[str]:
        state = rng.choice(self.starts)
        out = list(state)
        while len(out) < max_words:
            nxt = rng.choice(self.next.get(state, [END]))
            if nxt == END:
                break
            out.append(nxt)
            state = (state[1], nxt)
        return out


def body_of(text: str) -> str:
    """An entry without its "HEADWORD, n." header, verse flattened to prose."""
    match = HEADER.match(text)
    return " ".join(words(text[match.end():] if match else text))


def healthy(chain: Markov, count: int, titles: list[tuple[str, str]], generation: int,
            against: list[set], rng: random.Random, start_id: int) -> list[dict]:
    """`count` chain outputs that overlap no real or earlier synthetic record much."""
    out: list[dict] = []
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > count * 200:
            sys.exit("the Markov chain cannot produce enough distinct records; lower N_GEN*")
        toks = chain.generate(rng)
        if not MIN_WORDS <= len(toks) <= 110 or not toks[-1].endswith((".", "!", "?", '"')):
            continue
        head, pos = titles[(start_id + len(out)) % len(titles)]
        text = f"{head}, {pos} {' '.join(toks)}"
        sh = shingles(text)
        if any(jaccard(sh, other) >= MAX_OVERLAP for other in against):
            continue
        against.append(sh)
        out.append({"text": text, "generation": generation, "defect": "healthy"})
    return out


# ----------------------------------------------------------------------------- defects

def change_words(text: str, n: int, rng: random.Random) -> str:
    """The same text with `n` adjacent words in the middle replaced: a near-duplicate whose
    word 3-shingle Jaccard similarity to the original stays well above 0.8."""
    toks = text.split(" ")
    first = rng.randrange(len(toks) // 4, 3 * len(toks) // 4)
    for i in range(first, first + n):
        toks[i] = rng.choice([w for w in SWAPS if w != toks[i]])
    return " ".join(toks)


def invalid_records() -> list[dict]:
    return [{"text": ""}, {"text": "   \n\t  "}, {"text": "Yes."}, {"text": "ok then"},
            {"text": 42}, {"text": None}, {"text": ["a list", "of strings"]},
            {"prompt": "a record with no text field at all"}]


def formulaic_records(heads: list[str], rng: random.Random) -> list[dict]:
    """Assistant boilerplate: openers, numbered-tip templates, disclaimers, loops."""
    openers = ["Certainly! Here's", "Sure! Here is", "Of course! Below is", "Absolutely! Here's",
               "Great question! Here's"]
    closers = ["I hope this helps! Let me know if you have any other questions.",
               "I hope you find this helpful! Feel free to ask if you need anything else.",
               "Let me know if you'd like more definitions in this style!",
               "Feel free to reach out if you have any further questions!"]
    glosses = ["a word that describes a situation that many people experience in daily life",
               "an important concept that plays a key role in our society today",
               "a term used to refer to something that can have many different meanings",
               "a fascinating topic that has been discussed by many people throughout history",
               "a multifaceted idea that can be viewed from a variety of perspectives",
               "a common experience that affects individuals in many different ways",
               "an essential part of the human experience that we all share",
               "a concept that has evolved significantly over the years"]
    tips = ["Set clear goals and stay focused on them.", "Practice regularly and be patient.",
            "Stay organized and keep track of your progress.",
            "Don't be afraid to ask for help when you need it.",
            "Take breaks to avoid burnout.", "Stay positive and celebrate small wins.",
            "Learn from your mistakes and keep improving.",
            "Surround yourself with supportive people.",
            "Get enough sleep and take care of your health.",
            "Be consistent, because consistency is key to success."]
    topics = ["mastering {w}", "understanding {w}", "dealing with {w}", "avoiding {w}",
              "improving your {w}"]
    out = []
    for i in range(6):
        w = heads[i].lower()
        out.append(f"{openers[i % len(openers)]} a witty definition of \"{w}\":\n\n"
                   f"{heads[i]}, n. {glosses[i].capitalize()}. It is often associated with "
                   f"{glosses[(i + 3) % 8]}.\n\n{closers[i % len(closers)]}")
    for i in range(6, 12):
        w = heads[i].lower()
        picked = rng.sample(tips, 5)
        lines = "\n".join(f"{k}. {t}" for k, t in enumerate(picked, 1))
        out.append(f"Here are 5 tips for {topics[i % len(topics)].format(w=w)}:\n\n{lines}\n\n"
                   f"By following these tips, you can master {w} and achieve your goals!")
    for i in range(12, 16):
        w = heads[i].lower()
        out.append(f"As an AI language model, I don't have personal opinions about {w}. "
                   f"However, {w} is {glosses[i % 8]}. It is important to note that "
                   f"{w} is {glosses[(i + 5) % 8]}. In conclusion, {w} is a complex topic, and "
                   f"it is important to consider multiple perspectives. "
                   f"{closers[i % len(closers)]}")
    for i in range(16, 20):   # repetition loops: a generator stuck on one phrase
        w = heads[i].lower()
        phrase = f"{w} is {w} and"
        out.append(f"{heads[i]}, n. " + " ".join([phrase] * 14) + f" {w}.")
    out.append("The the the the the the the the the the the the the the the the the the the the "
               "the the the the the the the the the the the the the the the the.")
    sentence = "This is a very good and very useful definition of the word."
    out.append(" ".join([sentence] * 10))
    return [{"text": t, "defect": "formulaic"} for t in out]


OFF_DISTRIBUTION = [
    # Other languages (written for this sample).
    "Le marché du samedi ouvre à sept heures. Les producteurs installent leurs étals de "
    "légumes, de fromages et de pain frais, et les habitants du quartier viennent faire leurs "
    "courses en discutant de la pluie et du beau temps.",
    "Die Bahnstrecke zwischen den beiden Städten wird im nächsten Sommer erneuert. Während der "
    "Bauarbeiten fahren Ersatzbusse im Stundentakt, und die Fahrzeit verlängert sich um etwa "
    "zwanzig Minuten.",
    "Para preparar la masa, mezcle la harina con el agua tibia y una pizca de sal. Deje reposar "
    "la mezcla durante una hora en un lugar cálido antes de darle forma y hornearla.",
    "Il museo civico espone una collezione di mappe antiche e strumenti di navigazione. "
    "L'ingresso è gratuito la prima domenica del mese e le visite guidate partono ogni ora.",
    "東京の朝は早い。通勤電車は七時前から混み始め、駅の売店ではおにぎりとお茶がよく売れる。"
    "週末になると公園は家族連れでにぎわう。",
    # Code.
    "def merge_sorted(a, b):\n    i = j = 0\n    out = []\n    while i < len(a) and j < len(b):\n"
    "        if a[i] <= b[j]:\n            out.append(a[i]); i += 1\n        else:\n"
    "            out.append(b[j]); j += 1\n    return out + a[i:] + b[j:]",
    "SELECT customer_id, COUNT(*) AS orders, SUM(total) AS revenue FROM orders WHERE "
    "created_at >= '2023-01-01' GROUP BY customer_id HAVING COUNT(*) > 5 ORDER BY revenue DESC "
    "LIMIT 20;",
    "const debounce = (fn, ms) => { let t; return (...args) => { clearTimeout(t); t = "
    "setTimeout(() => fn.apply(this, args), ms); }; }; window.addEventListener('resize', "
    "debounce(() => console.log(window.innerWidth), 200));",
    "<div class=\"card\"><h2 class=\"card-title\">Order summary</h2><ul><li>Items: 3</li>"
    "<li>Shipping: free</li><li>Total: $42.10</li></ul><button type=\"submit\">Pay now</button>"
    "</div>",
    "2024-03-01T12:00:03Z INFO worker-3 job=4411 status=started\n2024-03-01T12:00:09Z WARN "
    "worker-3 job=4411 retry=1 reason=timeout\n2024-03-01T12:00:15Z INFO worker-3 job=4411 "
    "status=done duration_ms=11874",
]


def gibberish(rng: random.Random, n_words: int) -> str:
    letters = "bcdfghjklmnpqrstvwxzaeiouy"
    return " ".join("".join(rng.choice(letters) for _ in range(rng.randint(2, 11)))
                    for _ in range(n_words)).capitalize() + "."


def hexdump(rng: random.Random, lines: int) -> str:
    """Binary data pasted as text, the way a broken scraper leaves it."""
    return "\n".join(f"{16 * i:08x}  " + " ".join(f"{rng.randrange(256):02x}" for _ in range(16))
                     for i in range(lines))


# ----------------------------------------------------------------------------- build

def build() -> dict[str, list[dict]]:
    rng = random.Random(SEED)
    real, spare = select_real(read_entries(), rng)

    # Synthetic records are titled with headwords of entries left out of the real set.
    titles = []
    for word, text in spare:
        match = HEADER.match(text)
        if match:
            titles.append((match["head"].strip(), match["pos"].strip()))
    rng.shuffle(titles)

    against = [shingles(r["text"]) for r in real]
    gen1 = healthy(Markov([body_of(r["text"]) for r in real]), N_GEN1, titles, 1, against,
                   rng, 0)
    chain2 = Markov([body_of(r["text"]) for r in gen1])
    gen2 = healthy(chain2, N_GEN2, titles, 2, against, rng, N_GEN1)
    healthy_records = gen1 + gen2
    for i, rec in enumerate(healthy_records):
        rec["id"] = f"syn-h{i + 1:04d}"

    defects = plant_defects(real, healthy_records, [h for h, _ in titles[N_GEN1 + N_GEN2:]],
                            rng)
    synthetic = healthy_records + defects
    check_planted(synthetic, {r["id"]: r for r in real + healthy_records})
    synthetic = interleave(synthetic, rng)
    # Fields in one order; the invalid record without a text field keeps its odd shape.
    order = ("id", "text", "prompt", "generation", "defect", "variant_of")
    synthetic = [{k: r.get(k) for k in order if k in r or k in ("generation", "variant_of")}
                 for r in synthetic]
    for rec in synthetic:
        rec["generation"] = rec["generation"] if rec["generation"] is not None else 1
    instructions, chat = instruction_examples(real, healthy_records, rng)
    collapsed = later_generation(chain2, titles)
    return {"real.jsonl": real, "synthetic.jsonl": synthetic, "collapsed.jsonl": collapsed,
            "instructions.jsonl": instructions, "chat.jsonl": chat}


def emit(chain: Markov, count: int, rng: random.Random) -> list[str]:
    """`count` outputs of the chain with the healthy records' shape (length, a closing stop)
    and no other filter: what a generator hands the next round of self-training."""
    out: list[str] = []
    while len(out) < count:
        toks = chain.generate(rng)
        if MIN_WORDS <= len(toks) <= 110 and toks[-1].endswith((".", "!", "?", '"')):
            out.append(" ".join(toks))
    return out


def later_generation(chain2: Markov, titles: list[tuple[str, str]]) -> list[dict]:
    """collapsed.jsonl: generation COLLAPSE_ROUNDS of the same self-training. Round 2's chain
    (trained on generation 1) and every later one emit N_GEN1 records, and the next chain is
    trained on them, unfiltered, as a careless pipeline would; the last round's records are
    titled like the healthy ones. Its own random stream, so the other files stay as they are."""
    rng = random.Random(SEED + COLLAPSE_ROUNDS)
    chain = chain2
    for _ in range(3, COLLAPSE_ROUNDS + 1):
        chain = Markov(emit(chain, N_GEN1, rng))
    out = []
    for i, body in enumerate(emit(chain, N_COLLAPSED, rng)):
        head, pos = titles[i % len(titles)]
        out.append({"id": f"gen{COLLAPSE_ROUNDS}-{i + 1:04d}", "text": f"{head}, {pos} {body}",
                    "generation": COLLAPSE_ROUNDS})
    return out


def plant_defects(real: list[dict], healthy_records: list[dict], spare_heads: list[str],
                  rng: random.Random) -> list[dict]:
    """Every defect synthgate rejects, made from the real and healthy records. Each original
    gets one variant only, so who is kept and who is dropped is unambiguous."""
    defects: list[dict] = [dict(rec, defect="invalid") for rec in invalid_records()]
    # Exact duplicates within synthetic: verbatim, re-cased, re-spaced, NFKC-equivalent.
    variants = [lambda t: t, str.upper, lambda t: "  " + t.replace(" ", "   ") + "\n",
                lambda t: t.replace("fi", "\ufb01").replace("A", "\uff21")]
    for k, make in enumerate(variants):
        src = healthy_records[k]
        defects.append({"text": make(src["text"]), "generation": 1,
                        "defect": "exact_duplicate", "variant_of": src["id"]})
    # Near-duplicates within synthetic: one or two words changed in a long record.
    long_healthy = [h for h in healthy_records[len(variants):] if len(words(h["text"])) >= 70]
    for k in range(5):
        src = long_healthy[k]
        defects.append({"text": change_words(src["text"], 1 + k % 2, rng), "generation": 1,
                        "defect": "near_duplicate", "variant_of": src["id"]})
    # Exact copies of real records (memorization), some re-cased or re-spaced.
    plain = [r for r in real if r["headword"] not in PARAPHRASES]
    for k, make in enumerate([lambda t: t, lambda t: t, str.lower,
                              lambda t: t.replace(" ", "  ")]):
        src = plain[7 + 41 * k]
        defects.append({"text": make(src["text"]), "generation": 1,
                        "defect": "copies_real_exact", "variant_of": src["id"]})
    # Near copies of real records: a word or two changed in a long entry.
    long_real = [r for r in plain if len(words(r["text"])) >= 70]
    for k in range(4):
        src = long_real[3 + 17 * k]
        defects.append({"text": change_words(src["text"], 1 + k % 2, rng), "generation": 1,
                        "defect": "copies_real_near", "variant_of": src["id"]})
    # Paraphrases of real records: the meaning kept, the words changed.
    by_head = {r["headword"]: r for r in real}
    for head, text in PARAPHRASES.items():
        defects.append({"text": text, "generation": 1, "defect": "paraphrase_of_real",
                        "variant_of": by_head[head]["id"]})
    defects += [dict(rec, generation=1) for rec in formulaic_records(spare_heads, rng)]
    off = OFF_DISTRIBUTION + [gibberish(rng, 40), gibberish(rng, 25), hexdump(rng, 3)]
    defects += [{"text": t, "generation": 1, "defect": "off_distribution"} for t in off]
    for i, rec in enumerate(defects):
        rec["id"] = f"syn-d{i + 1:04d}"
    return defects


def interleave(synthetic: list[dict], rng: random.Random) -> list[dict]:
    """Defects among healthy records, as in a real dump, but each after the record it
    repeats: "the first seen is kept" then keeps the original."""
    synthetic = list(synthetic)
    rng.shuffle(synthetic)
    position = {r["id"]: i for i, r in enumerate(synthetic)}
    for rec in list(synthetic):
        original, here = position.get(rec.get("variant_of")), position[rec["id"]]
        if original is not None and original > here:
            synthetic[here], synthetic[original] = synthetic[original], synthetic[here]
            position[synthetic[here]["id"]], position[synthetic[original]["id"]] = \
                here, original
    return synthetic


def check_planted(synthetic: list[dict], originals: dict[str, dict]) -> None:
    """Each planted defect is what it claims to be: near copies share most word 3-shingles
    with their original (well above the 0.8 near-duplicate default), paraphrases almost none,
    and no two formulaic records are near-duplicates of each other (or they would be rejected
    as near-duplicates before anything judged them formulaic)."""
    for rec in synthetic:
        if rec["defect"] not in ("near_duplicate", "copies_real_near", "paraphrase_of_real"):
            continue
        sim = jaccard(shingles(rec["text"]), shingles(originals[rec["variant_of"]]["text"]))
        near = rec["defect"] != "paraphrase_of_real"
        if (near and sim < 0.85) or (not near and sim > 0.3):
            sys.exit(f"{rec['id']}: planted {rec['defect']} has Jaccard {sim:.2f} to its "
                     f"original; adjust the build")
    formulaic = [shingles(r["text"]) for r in synthetic if r["defect"] == "formulaic"]
    for i, a in enumerate(formulaic):
        for b in formulaic[i + 1:]:
            if jaccard(a, b) >= 0.6:
                sys.exit("two formulaic records are near-duplicates; adjust the build")


def instruction_examples(real: list[dict], synthetic: list[dict], rng: random.Random
                         ) -> tuple[list[dict], list[dict]]:
    """A small mixed file of instruction/response pairs with a `source` field, and the same
    pairs as chat `messages`: the input shapes of instruction tuning."""
    rows = []
    for rec, source in [(r, "real") for r in real[::10]] + \
                       [(s, "synthetic") for s in synthetic[:30]]:
        match = HEADER.match(rec["text"])
        rows.append({"id": f"{source[0]}-{rec['id']}", "source": source,
                     "generation": rec["generation"],
                     "instruction": f"Define \"{match['head'].strip().lower()}\" the way "
                                    f"Ambrose Bierce's Devil's Dictionary would.",
                     "response": rec["text"][match.end():].strip()})
    copy = dict(rows[3], id="s-copy-1", source="synthetic", generation=1)
    boiler = dict(rows[5], id="s-boiler-1", source="synthetic", generation=1,
                  response="Certainly! Here's a witty definition: it is a word that describes "
                           "a situation many people experience. I hope this helps!")
    empty = dict(rows[7], id="s-empty-1", source="synthetic", generation=1, response="  ")
    rows += [copy, boiler, empty]
    rng.shuffle(rows)
    chat = [{"id": r["id"], "source": r["source"], "generation": r["generation"],
             "messages": [{"role": "user", "content": r["instruction"]},
                          {"role": "assistant", "content": r["response"]}]} for r in rows]
    return rows, chat


def write_jsonl(path: Path, records: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


def main() -> None:
    for name, records in build().items():
        write_jsonl(HERE / name, records)
        print(f"{name}: {len(records)} records")


if __name__ == "__main__":
    main()
