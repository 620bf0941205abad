"""Text generators of different families, for clean synthetic records and for the recursive
self-training (model collapse) series.

- `NgramLM`: a word n-gram Markov chain (backs off to shorter contexts), sampled with a
  temperature and top-k truncation.
- `TopicNgramLM`: k-means topics over TF-IDF vectors, one word 3-gram model per topic
  (backed off to shorter contexts, then to the pooled model), a topic drawn from the topic
  sizes raised to a power, words with nucleus (top-p) sampling.
- `RephraseLM`: paraphrase augmentation, a nonparametric generator that draws records of its
  training set (typical ones more often) and rewords them (rewrite.py).
- `GruLM`: a small word-level GRU language model trained with torch on the CPU for a fixed
  number of steps, sampled with a temperature.

Each has `fit(texts, rng)` and `sample(n, rng) -> list[str]`; a series refits a fresh model
on the previous generation's samples every round. Everything is seeded: same inputs and
seed, same texts (the GRU on one CPU thread, same torch build).
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict

import numpy as np

TOKEN = re.compile(r"\n|\w+(?:['’]\w+)*|--+|\.\.\.|[^\w\s]")
BOS, EOS = "<s>", "</s>"
MAX_TOKENS = 120
NO_SPACE_BEFORE = set(",.;:!?)]}%’”")
NO_SPACE_AFTER = set("([{“$")


def tokenize(text: str) -> list[str]:
    # Line breaks are tokens: verse keeps its shape in the samples.
    return TOKEN.findall(re.sub(r"[ \t]*\n[ \t\n]*", "\n", text.strip()))


def detokenize(tokens: list[str]) -> str:
    out: list[str] = []
    open_quote = {'"': False, "'": False}
    for tok in tokens:
        prev = out[-1] if out else "\n"
        if tok in open_quote:                    # straight quotes alternate open / close
            open_quote[tok] = not open_quote[tok]
            glue = not open_quote[tok] or prev.endswith(("\n", "(", "[")) or prev == ""
        else:
            glue = (tok == "\n" or prev.endswith("\n") or tok in NO_SPACE_BEFORE
                    or prev[-1:] in NO_SPACE_AFTER
                    or (prev.strip() in open_quote and open_quote[prev.strip()]))
        out.append(tok if glue or not out else " " + tok)
    return "".join(out).strip()


def n_words(tokens: list[str]) -> int:
    return sum(1 for t in tokens if t[:1].isalnum())


def _draw(rng: random.Random, weights: np.ndarray) -> int:
    cum = np.cumsum(weights)
    return int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))


def _backoff(tables, history: list[str], lengths, rng: random.Random) -> str:
    """A next token from the first table, then context length, that knows the context."""
    for table in tables:
        for n in lengths:
            entry = table.get(tuple(history[len(history) - n:]))
            if entry is not None:
                words, weights = entry
                return words[_draw(rng, weights)]
    return EOS


def _draw_tokens(next_token, order: int, rng: random.Random) -> list[str]:
    """One record's tokens: next_token(history, rng) until </s> or MAX_TOKENS."""
    toks = [BOS] * (order - 1)
    while len(toks) < MAX_TOKENS:
        tok = next_token(toks, rng)
        if tok == EOS:
            break
        toks.append(tok)
    return toks[order - 1:]


class NgramLM:
    """Word n-gram Markov chain with back-off to shorter contexts."""

    def __init__(self, order: int = 3, temperature: float = 1.0, top_k: int | None = None,
                 min_words: int = 4):
        self.order, self.temperature, self.top_k = order, temperature, top_k
        self.min_words = min_words

    def fit(self, texts: list[str], rng: random.Random | None = None) -> "NgramLM":
        counts: dict[tuple, Counter] = defaultdict(Counter)
        for text in texts:
            toks = [BOS] * (self.order - 1) + tokenize(text) + [EOS]
            for i in range(self.order - 1, len(toks)):
                for n in range(self.order):                          # every context length
                    counts[tuple(toks[i - n:i])][toks[i]] += 1
        self.table_ = {}
        for ctx, counter in counts.items():
            items = counter.most_common(self.top_k)                  # truncation: top-k
            words = [w for w, _ in items]
            weights = np.array([c for _, c in items], dtype=float) ** (1.0 / self.temperature)
            self.table_[ctx] = (words, weights)
        return self

    def _next(self, history: list[str], rng: random.Random) -> str:
        return _backoff((self.table_,), history, range(self.order - 1, -1, -1), rng)

    def sample_one(self, rng: random.Random) -> str:
        while True:
            body = _draw_tokens(self._next, self.order, rng)
            if n_words(body) >= self.min_words:
                return detokenize(body)

    def sample(self, n: int, rng: random.Random) -> list[str]:
        return [self.sample_one(rng) for _ in range(n)]


class TopicNgramLM:
    """k-means topics on TF-IDF; one word n-gram model per topic, backed off to shorter
    contexts and then to the pooled model of all topics."""

    def __init__(self, order: int = 3, topics: int = 12, topic_power: float = 1.25,
                 top_p: float = 0.9, min_words: int = 4):
        self.order, self.topics, self.topic_power = order, topics, topic_power
        self.top_p, self.min_words = top_p, min_words

    def fit(self, texts: list[str], rng: random.Random) -> "TopicNgramLM":
        from sklearn.cluster import KMeans
        from sklearn.feature_extraction.text import TfidfVectorizer

        x = TfidfVectorizer(min_df=2, stop_words="english", max_features=5000).fit_transform(texts)
        k = min(self.topics, len(texts))
        labels = KMeans(n_clusters=k, n_init=3, random_state=rng.randrange(2**31)).fit_predict(x)
        pooled: dict[tuple, Counter] = defaultdict(Counter)
        per_topic: list[dict[tuple, Counter]] = [defaultdict(Counter) for _ in range(k)]
        for text, label in zip(texts, labels):
            toks = [BOS] * (self.order - 1) + tokenize(text) + [EOS]
            for i in range(self.order - 1, len(toks)):
                for n in range(1, self.order):
                    ctx = tuple(toks[i - n:i])
                    pooled[ctx][toks[i]] += 1
                    per_topic[label][ctx][toks[i]] += 1
        sizes = np.bincount(labels, minlength=k).astype(float)
        self.topic_weights_ = sizes ** self.topic_power          # > 1: big topics favoured
        self.pooled_ = {c: self._nucleus(v) for c, v in pooled.items()}
        # A topic's own context is used where the topic has seen it at least twice.
        self.per_topic_ = [{c: self._nucleus(v) for c, v in t.items() if sum(v.values()) >= 2}
                           for t in per_topic]
        return self

    def _nucleus(self, counter: Counter) -> tuple[list[str], np.ndarray]:
        items = counter.most_common()
        counts = np.array([c for _, c in items], dtype=float)
        cum = np.cumsum(counts) / counts.sum()
        keep = int(np.searchsorted(cum, self.top_p) + 1)
        return [w for w, _ in items[:keep]], counts[:keep]

    def _next(self, topic: dict, toks: list[str], rng: random.Random) -> str:
        return _backoff((topic, self.pooled_), toks, range(self.order - 1, 0, -1), rng)

    def sample_one(self, rng: random.Random) -> str:
        while True:
            topic = self.per_topic_[_draw(rng, self.topic_weights_)]
            body = _draw_tokens(lambda toks, r: self._next(topic, toks, r), self.order, rng)
            if n_words(body) >= self.min_words:
                return detokenize(body)

    def sample(self, n: int, rng: random.Random) -> list[str]:
        return [self.sample_one(rng) for _ in range(n)]


class GruLM:
    """A small word-level GRU language model, trained on the CPU for a fixed step budget."""

    def __init__(self, temperature: float = 0.9, steps: int = 150, batch: int = 32,
                 embed: int = 64, hidden: int = 96, min_count: int = 2,
                 max_vocab: int = 2000, lr: float = 0.01, min_words: int = 4):
        self.temperature, self.steps, self.batch = temperature, steps, batch
        self.embed, self.hidden, self.min_count, self.lr = embed, hidden, min_count, lr
        self.max_vocab = max_vocab
        self.min_words = min_words

    def fit(self, texts: list[str], rng: random.Random) -> "GruLM":
        import torch

        torch.set_num_threads(1)                 # reproducible, and fair to a shared machine
        torch.manual_seed(rng.randrange(2**31))
        seqs = [tokenize(t)[:MAX_TOKENS - 2] for t in texts]
        counts = Counter(tok for s in seqs for tok in s)
        # 0 pad, 1 unknown (never sampled), 2 <s>, 3 </s>
        # A word seen fewer than min_count times becomes <unk>, which is never sampled: the
        # tail a finite model cannot learn is lost, as in a real generator.
        self.vocab_ = ["<pad>", "<unk>", BOS, EOS] + sorted(
            w for w, c in counts.most_common(self.max_vocab) if c >= self.min_count)
        index = {w: i for i, w in enumerate(self.vocab_)}
        encoded = [[2] + [index.get(t, 1) for t in s] + [3] for s in seqs]
        self.model_ = _GruNet(len(self.vocab_), self.embed, self.hidden)
        opt = torch.optim.Adam(self.model_.parameters(), lr=self.lr)
        order = list(range(len(encoded)))
        pos = len(order)
        for _ in range(self.steps):
            if pos + self.batch > len(order):
                rng.shuffle(order)
                pos = 0
            batch = [encoded[i] for i in order[pos:pos + self.batch]]
            pos += self.batch
            width = max(len(s) for s in batch)
            x = torch.zeros((len(batch), width), dtype=torch.long)
            for row, s in enumerate(batch):
                x[row, :len(s)] = torch.tensor(s)
            logits = self.model_(x[:, :-1])[0]
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), ignore_index=0)
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.loss_ = float(loss.detach())
        return self

    def sample(self, n: int, rng: random.Random) -> list[str]:
        import torch

        torch.manual_seed(rng.randrange(2**31))
        out: list[str] = []
        with torch.no_grad():
            while len(out) < n:
                m = min(512, n - len(out) + 16)          # chunks: stop at the chunk's longest
                tok = torch.full((m, 1), 2, dtype=torch.long)
                state, rows = None, []
                done = torch.zeros(m, dtype=torch.bool)
                for _ in range(MAX_TOKENS):
                    logits, state = self.model_(tok, state)
                    logits = logits[:, -1] / self.temperature
                    logits[:, :3] = -float("inf")            # never <pad>, <unk> or <s>
                    tok = torch.multinomial(torch.softmax(logits, -1), 1)
                    rows.append(tok[:, 0])
                    done |= tok[:, 0] == 3
                    if bool(done.all()):
                        break
                for seq in torch.stack(rows, 1).tolist():
                    toks = [self.vocab_[i] for i in (seq[:seq.index(3)] if 3 in seq else seq)]
                    if n_words(toks) >= self.min_words and len(out) < n:
                        out.append(detokenize(toks))
        return out


def _GruNet(vocab: int, embed: int, hidden: int):
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(vocab, embed, padding_idx=0)
            self.gru = torch.nn.GRU(embed, hidden, batch_first=True)
            self.out = torch.nn.Linear(hidden, vocab)

        def forward(self, x, state=None):
            y, state = self.gru(self.emb(x), state)
            return self.out(y), state

    return Net()


class RephraseLM:
    """Paraphrase augmentation: draws records of its training set, typical ones more often,
    and rewords each (rewrite.Paraphraser: clause reordering, rewording, WordNet synonyms
    preferring words common in the training set). A nonparametric generator: fitting is
    keeping the training set and its word counts; refitting on its own output makes the
    resampling and the synonym choice narrow each round."""

    def __init__(self, wordnet, typicality: float = 1.0, substitute: float = 0.3):
        self.wordnet, self.typicality, self.substitute = wordnet, typicality, substitute

    def fit(self, texts: list[str], rng: random.Random | None = None) -> "RephraseLM":
        from rewrite import Paraphraser

        self.texts_ = list(texts)
        counts = Counter(w for t in texts for w in re.findall(r"\w+(?:['’]\w+)*", t))
        total = sum(counts.values())
        # Typicality: mean unigram log-probability of a record's words, as z-scores.
        score = np.array([np.mean([np.log(counts[w] / total) for w in
                                   re.findall(r"\w+(?:['’]\w+)*", t)] or [0.0]) for t in texts])
        z = (score - score.mean()) / (score.std() or 1.0)
        self.weights_ = np.exp(self.typicality * z)
        self.paraphraser_ = Paraphraser(self.wordnet, counts)
        return self

    def sample(self, n: int, rng: random.Random) -> list[str]:
        return [self.paraphraser_.reword(self.texts_[_draw(rng, self.weights_)], rng,
                                         self.substitute) for _ in range(n)]


# name: (model factory, description, role). Each series has its own model family and
# sampling settings. "calibration" series are ones whose first generation is a fair sample
# of a model of the real text (a gate should pass it) and that collapse within a few rounds;
# the GRU is a "control": a weak generator (a few seconds of CPU training) whose first
# generation is already far from the real text, so a gate may rightly fail it at once.
SERIES = {
    "ngram": (lambda: NgramLM(order=3, temperature=0.75),
              "word 3-gram Markov chain, temperature 0.75", "calibration"),
    "topic": (lambda: TopicNgramLM(order=3, topics=12, topic_power=1.25, top_p=0.9),
              "k-means topics + per-topic word 3-grams, topics drawn by size^1.25, top-p 0.9",
              "calibration"),
    "rephrase": (lambda: RephraseLM(_wordnet(), typicality=0.5, substitute=0.3),
                 "paraphrase augmentation: records drawn with weight e^(z/2) of their "
                 "typicality, 30% of content words swapped for WordNet synonyms", "calibration"),
    "gru": (lambda: GruLM(temperature=0.9),
            "word-level GRU (64/96, 2,000 words) trained 150 steps on the CPU, temperature 0.9",
            "control"),
}


_WORDNET = []


def _wordnet():
    from rewrite import WordNet

    if not _WORDNET:
        _WORDNET.append(WordNet().load())
    return _WORDNET[0]


def series(name: str, train: list[str], generations: int, per_generation: int,
           seed: int) -> list[list[str]]:
    """Generations 1..G: generation 1 from a model fitted on `train` (real text), each later
    one from a fresh model fitted on the previous generation's samples; each generation holds
    len(train) samples (refits see as much text as the first fit); the first
    `per_generation` of each are returned (the rest only feed the next fit)."""
    factory = SERIES[name][0]
    rng = random.Random(f"{seed}:{name}")
    data, out = list(train), []
    for _ in range(generations):
        model = factory().fit(data, rng)
        data = model.sample(len(train), rng)
        out.append(data[:per_generation])
    return out
