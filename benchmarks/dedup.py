"""Dedup benchmark: speed, memory and accuracy of the near-duplicate stage.

    python benchmarks/dedup.py                      # 100,000 documents
    python benchmarks/dedup.py --docs 1000000       # bounded memory at a million
    python benchmarks/dedup.py --choose-ngram       # the measurement behind the default n

Builds a corpus of documents of 50-300 words (Zipf-distributed pseudo-words) with planted
near-duplicates (1-5% of words substituted, inserted or deleted, so their true Jaccard falls
on both sides of the threshold) and exact duplicates (case and spacing changed), half real
and half synthetic, shuffled. Then, in the same run on the same corpus:

- the floor: reading the files, normalizing, cutting and hashing every shingle once;
- `synthgate run --stages dedup --max-synthetic-share 1` as a separate process, as a user
  waits for it (the console script, from launch to exit): docs/s, the time of each step
  (report.json), the peak RSS (the kernel's high-water mark, VmHWM) and the peak memory (PSS) of its
  process tree;
- the naive datasketch baseline, a per-shingle `MinHash.update` loop into a `MinHashLSH`
  with its default bands, trusting candidates, on a subset of whole duplicate families (it
  is ~30 times slower), next to the stage run on that same subset;
- precision and recall of the duplicate pairs against the exact Jaccard (on the shingle
  strings): the true pairs are a family's pairs at or above the threshold (documents of
  different families are independent random texts, far below); LSH recall is the share of
  them that the bands make candidates; recall is the share not left with both records kept;
  precision is the share of dropped records whose (record, dup_of) pair reaches the
  threshold.

Timings depend on the machine and its load: compare the ratios printed by one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from synthgate import dedup  # noqa: E402
from synthgate.config import Config, DedupConfig  # noqa: E402
from synthgate.minhash import (MinHasher, Shingler, catch_probability, jaccard,  # noqa: E402
                              lsh_params)
from synthgate.records import new_table  # noqa: E402
from synthgate.stage import RunContext  # noqa: E402


# --------------------------------------------------------------------------- corpus

def vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables, rng.integers(1, 4))))
    return sorted(words)


def edit(words: list[str], rate: float, vocab: list[str], rng: np.random.Generator) -> list[str]:
    """Substitutes, inserts or deletes about `rate` of the words (at least one)."""
    out = list(words)
    for _ in range(max(1, round(rate * len(words)))):
        pos = int(rng.integers(len(out)))
        op = rng.integers(3)
        if op == 0:
            out[pos] = vocab[rng.integers(len(vocab))]
        elif op == 1:
            out.insert(pos, vocab[rng.integers(len(vocab))])
        elif len(out) > 2:
            del out[pos]
    return out


def make_corpus(docs: int, seed: int = 0) -> pd.DataFrame:
    """id, source, text, family: independent base documents, 15% of them with 1-3 near
    copies and 5% with an exact copy, in shuffled order, each record real or synthetic."""
    rng = np.random.default_rng(seed)
    vocab = vocabulary(20_000, rng)
    cdf = np.cumsum(1.0 / np.arange(1, len(vocab) + 1) ** 1.1)
    cdf /= cdf[-1]
    texts, families = [], []
    family = 0
    while len(texts) < docs:
        base = [vocab[i] for i in np.searchsorted(cdf, rng.random(rng.integers(50, 301)))]
        texts.append(" ".join(base))
        families.append(family)
        if rng.random() < 0.15:
            for _ in range(rng.integers(1, 4)):
                texts.append(" ".join(edit(base, rng.uniform(0.01, 0.05), vocab, rng)))
                families.append(family)
        if rng.random() < 0.05:
            texts.append("  " + " ".join(base).upper().replace(" ", "  \t", 3) + " ")
            families.append(family)
        family += 1
    order = rng.permutation(len(texts))[:docs]
    return pd.DataFrame({
        "id": [f"d{i}" for i in range(docs)],
        "source": np.where(rng.random(docs) < 0.5, "real", "synthetic"),
        "text": [texts[i] for i in order],
        "family": np.asarray(families)[order]})


def write_corpus(corpus: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    paths = []
    for source in ("real", "synthetic"):
        path = folder / f"{source}.jsonl"
        corpus.loc[corpus["source"] == source, ["id", "text"]].to_json(
            path, orient="records", lines=True, force_ascii=False)
        paths.append(path)
    return paths[0], paths[1]


# --------------------------------------------------------------------------- measures

def process_tree(root: int) -> list[int]:
    """A process and all its descendants, by /proc's children lists."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return pids


class TreeMemory:
    """Peak memory of a process and all its descendants, sampled every 0.2 s. Each process
    counts its proportional set size (PSS): a forked worker shares its parent's pages until
    either writes them, and plain RSS would count those pages twice."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        # The kernel's high-water mark of each process's own memory (VmHWM), read until it
        # exits. Not wait4's ru_maxrss: Linux carries the launching process's peak across
        # fork + exec, so a benchmark holding its corpus reported its own size as synthgate's.
        self.hwm: dict[int, int] = {}
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        return process_tree(self.pid)

    @staticmethod
    def _memory(pid: int) -> int:
        for name, key in (("smaps_rollup", "Pss:"), ("status", "VmRSS:")):
            try:
                for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
                    if line.startswith(key):
                        return int(line.split()[1]) * 1024
            except OSError:
                continue
        return 0

    @staticmethod
    def _high_water(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _watch(self) -> None:
        while not self._stop.is_set():
            pids = self._tree()
            self.peak = max(self.peak, sum(self._memory(pid) for pid in pids))
            for pid in pids:
                self.hwm[pid] = max(self.hwm.get(pid, 0), self._high_water(pid))
            time.sleep(0.1)

    @property
    def max_rss(self) -> int:
        """The largest process's peak resident set (to the last reading before it ended)."""
        return max(self.hwm.values(), default=0)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


class Clock:
    """Wall and CPU seconds of a block; CPU counts this process and the child processes
    that ended inside the block, so it holds even on a busy machine."""

    @staticmethod
    def _cpu() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def __enter__(self) -> "Clock":
        self._wall, self._cpu0 = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = self._cpu() - self._cpu0


def floor(paths: tuple[Path, Path], ngram: int, batch: int = 512) -> Clock:
    """Reading the files, normalizing, and hashing every shingle once."""
    shingler = Shingler(ngram)
    with Clock() as clock:
        for path in paths:
            with open(path, encoding="utf-8") as fh:
                texts = [json.loads(line)["text"] for line in fh]
            for i in range(0, len(texts), batch):
                shingler.fingerprints([shingler.shingle_text(dedup.normalize(t))
                                       for t in texts[i:i + batch]])
    return clock


def run_cli(paths: tuple[Path, Path], folder: Path, cfg: DedupConfig) -> dict:
    """`synthgate run --stages dedup --max-synthetic-share 1` in its own process, as a user
    waits for it: wall time from launch to exit, peak memory, report and decisions."""
    config = folder / "dedup.toml"
    config.write_text("[dedup]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in
                                              vars(cfg).items()))
    out = folder / "out"
    # What a user types: the installed console script (python -m synthgate.cli where there
    # is none), so interpreter start, imports, ingest, the stage, the measurements, the
    # contracts, the report and the written files all count.
    script = Path(sys.executable).with_name("synthgate")
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "synthgate.cli"]
    command = launcher + ["run", "--real", str(paths[0]), "--synthetic", str(paths[1]),
                          "--out", str(out), "--stages", "dedup", "--max-synthetic-share",
                          "1", "--config", str(config), "--quiet"]
    with tempfile.TemporaryFile() as stderr, Clock() as clock:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=stderr)
        memory = TreeMemory(process.pid)
        _, status, _ = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace")
    peak = memory.stop()
    if process.returncode not in (0, 1):
        raise SystemExit(f"synthgate failed ({process.returncode}):\n{errors}")
    report = json.loads((out / "report.json").read_text())
    steps = {s["name"]: s["seconds"] for s in report["stages"]}
    return {"clock": clock, "stage": steps["dedup"], "steps": steps, "peak": peak,
            "max_rss": memory.max_rss, "report": report,
            "decisions": pd.read_parquet(out / "decisions.parquet")}


def naive_baseline(subset: pd.DataFrame, cfg: DedupConfig) -> tuple[Clock, pd.Series, dict]:
    """The textbook datasketch loop: per-shingle MinHash.update, MinHashLSH with its default
    bands for the threshold, a record dropped when the index of kept records returns any
    candidate. Real records first, like the stage. Returns its clock, dup_of per record and
    each record's signature."""
    from datasketch import MinHash, MinHashLSH

    shingler = Shingler(cfg.ngram, cfg.shingle)
    order = np.argsort((subset["source"] != "real").to_numpy(), kind="stable")
    texts, ids = subset["text"].tolist(), subset["id"].tolist()
    dup_of: dict[str, str | None] = {}
    signatures = {}
    with Clock() as clock:
        lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
        for i in order:
            minhash = MinHash(num_perm=cfg.num_perm, seed=cfg.seed)
            for shingle in shingler.shingles(shingler.shingle_text(dedup.normalize(texts[i]))):
                minhash.update(" ".join(shingle).encode("utf-8"))
            candidates = lsh.query(minhash)
            dup_of[ids[i]] = ids[min(candidates)] if candidates else None
            if not candidates:
                lsh.insert(int(i), minhash)
            signatures[ids[i]] = minhash.hashvalues
    return clock, pd.Series(dup_of), {"signatures": signatures, "bands": lsh.b, "rows": lsh.r}


def stage_on(subset: pd.DataFrame, cfg: DedupConfig) -> tuple[Clock, pd.Series]:
    """The dedup stage alone (no ingest, no report) on a table: its clock and dup_of."""
    table = new_table(subset["id"].tolist(), subset["source"].tolist(), subset["text"].tolist())
    with Clock() as clock:
        dedup.DedupStage().run(table, RunContext(config=Config(stages=["dedup"], dedup=cfg)))
    return clock, pd.Series(np.where(table["kept"], None, table["dup_of"]),
                              index=table["id"].to_numpy())


def stage_lsh(frame: pd.DataFrame, cfg: DedupConfig, ids: set[str]) -> dict:
    """The stage's signatures (the values its LSH index sees) for some records."""
    bands, rows = lsh_params(cfg.threshold, cfg.num_perm, cfg.lsh_recall)
    minhasher = MinHasher(Shingler(cfg.ngram, cfg.shingle), cfg.num_perm, cfg.seed)
    chosen = frame[frame["id"].isin(ids)]
    texts = [minhasher.shingler.shingle_text(dedup.normalize(t)) for t in chosen["text"]]
    signatures = np.concatenate([minhasher.signatures(texts[i:i + 512])
                                 for i in range(0, len(texts), 512)] or [np.zeros((0, 1))])
    return {"signatures": dict(zip(chosen["id"], signatures)), "bands": bands, "rows": rows}


def true_pairs(corpus: pd.DataFrame, cfg: DedupConfig) -> list[tuple[str, str]]:
    """Pairs of one family whose exact Jaccard is at or above the threshold."""
    shingler = Shingler(cfg.ngram, cfg.shingle)
    pairs = []
    multi = corpus[corpus.duplicated("family", keep=False)]
    for _, family in multi.groupby("family", sort=False):
        ids = family["id"].tolist()
        sets = [shingler.shingles(shingler.shingle_text(dedup.normalize(t)))
                for t in family["text"]]
        pairs += [(ids[a], ids[b]) for a in range(len(ids)) for b in range(a + 1, len(ids))
                  if jaccard(sets[a], sets[b]) >= cfg.threshold]
    return pairs


def pair_accuracy(corpus: pd.DataFrame, pairs: list[tuple[str, str]], dup_of: pd.Series,
                  lsh: dict, cfg: DedupConfig) -> dict:
    """Against the exact Jaccard: the true pairs that LSH makes candidates (their signatures
    agree on a whole band), the true pairs left with both records kept, and the precision
    of the (record, dup_of) pairs of the dropped records."""
    shingler = Shingler(cfg.ngram, cfg.shingle)
    shingles = lambda t: shingler.shingles(shingler.shingle_text(dedup.normalize(t)))
    dup_of = dup_of.reindex(corpus["id"].to_numpy())
    texts = dict(zip(corpus["id"], corpus["text"]))
    signatures, width = lsh["signatures"], lsh["bands"] * lsh["rows"]
    caught = sum(bool((signatures[a][:width] == signatures[b][:width])
                      .reshape(lsh["bands"], lsh["rows"]).all(axis=1).any()) for a, b in pairs)
    left = sum(dup_of[a] is None and dup_of[b] is None for a, b in pairs)
    dropped = dup_of[dup_of.notna()]
    correct = sum(jaccard(shingles(texts[i]), shingles(texts[d])) >= cfg.threshold
                  for i, d in dropped.items())
    return {"true_pairs": len(pairs), "candidates": caught / len(pairs) if pairs else 1.0,
            "left": left, "recall": 1 - left / len(pairs) if pairs else 1.0,
            "dropped": len(dropped), "precision": correct / len(dropped) if len(dropped) else 1.0}


# --------------------------------------------------------------------------- main

def benchmark(args: argparse.Namespace) -> None:
    # The bar is the fixed threshold, as the naive baseline's: the learned bar (the default,
    # `learn_threshold`) lowers it where edited copies need it, which proposes more pairs.
    cfg = DedupConfig(ngram=args.ngram, num_perm=args.num_perm, threshold=args.threshold,
                      learn_threshold=args.learn_threshold)
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at start (a shared "
          f"machine slows everything: compare the ratios of one run)")
    start = time.perf_counter()
    corpus = make_corpus(args.docs, seed=args.seed)
    words = corpus["text"].str.count(" ") + 1
    print(f"corpus: {len(corpus):,} documents, {words.min()}-{words.max()} words "
          f"(mean {words.mean():.0f}), {corpus['family'].nunique():,} families, built in "
          f"{time.perf_counter() - start:.0f} s")
    print(f"config: word {cfg.ngram}-grams, {cfg.num_perm} permutations, threshold "
          f"{cfg.threshold}" + (" (learned bar: at most this)" if cfg.learn_threshold else "")
          + "\n")

    with tempfile.TemporaryDirectory(prefix="dedup-bench-") as tmp:
        folder = Path(tmp)
        paths = write_corpus(corpus, folder)
        floor_clock = floor(paths, cfg.ngram)
        cli = run_cli(paths, folder, cfg)

    families = corpus["family"].drop_duplicates()
    sizes = corpus.groupby("family").size().reindex(families.to_numpy()).cumsum()
    chosen = set(sizes.index[:int(np.searchsorted(sizes.to_numpy(), args.baseline_docs)) + 1])
    subset = corpus[corpus["family"].isin(chosen)].reset_index(drop=True)
    naive, naive_dups, naive_lsh = naive_baseline(subset, cfg)
    on_subset, subset_dups = stage_on(subset, cfg)

    n, m = len(corpus), len(subset)
    decisions = cli["decisions"].set_index("id")
    full_dups = pd.Series(np.where(decisions["kept"], None, decisions["dup_of"]),
                          index=decisions.index)
    naive_wall, naive_cpu = m / naive.wall, m / naive.cpu
    rows = [
        ("floor: read + normalize + hash every shingle", n, floor_clock.wall, floor_clock.cpu,
         None),
        ("dedup stage (report.json stages.seconds)", n, cli["stage"], None, None),
        ("synthgate run --stages dedup, whole process", n, cli["clock"].wall, cli["clock"].cpu,
         cli["peak"]),
        ("naive datasketch MinHash.update loop (subset)", m, naive.wall, naive.cpu, None),
        ("dedup stage on the same subset", m, on_subset.wall, on_subset.cpu, None),
    ]
    print(f"{'':47} {'docs':>9} {'wall s':>7} {'docs/s':>7} {'x naive':>7} {'CPU s':>7} "
          f"{'docs/CPU-s':>10} {'x naive':>7} {'peak PSS':>9}")
    for name, docs, wall, cpu, peak in rows:
        cpu_cells = (f"{cpu:>7.1f} {docs / cpu:>10,.0f} {docs / cpu / naive_cpu:>7.1f}"
                     if cpu else f"{'':>7} {'':>10} {'':>7}")
        print(f"{name:47} {docs:>9,} {wall:>7.1f} {docs / wall:>7,.0f} "
              f"{docs / wall / naive_wall:>7.1f} {cpu_cells} "
              f"{f'{peak / 2**30:.2f} GiB' if peak else '':>9}")
    whole = cli["clock"].wall
    steps = cli["steps"]
    other = whole - sum(steps.values())
    print(f"\nwhole process {whole:.2f} s = " + " + ".join(
        f"{name} {seconds:.2f}" for name, seconds in steps.items())
        + f" + start-up, contracts, report and writing {other:.2f}")
    print(f"whole process: {n / whole:,.0f} docs/s = {n / whole / naive_wall:.1f} x naive "
          f"(target >= 25 at 50k), {whole / floor_clock.wall:.2f} x the floor (target <= 2 "
          f"at 100k); peak RSS {cli['max_rss'] / 2**30:.2f} GiB (largest process), peak PSS "
          f"{cli['peak'] / 2**30:.2f} GiB (process tree, sampled)")
    print(f"stage time / floor time: {cli['stage'] / floor_clock.wall:.2f}; diversity and "
          f"report metrics (measure) / dedup stage: "
          f"{steps.get('measure', 0) / cli['stage']:.1%} (target <= 10%)")
    print("rejections:", cli["report"]["rejections"])
    near = cli["report"]["details"]["dedup"]["near"]
    print(f"stage LSH: {near['bands']} bands x {near['rows']} rows (P(candidate | J = threshold) "
          f"= {near['candidate_probability_at_threshold']}); {near['candidate_pairs_checked']:,} "
          f"candidate pairs checked, {near['rejected_by_jaccard']:,} rejected by true Jaccard")
    print(f"naive LSH: datasketch default {naive_lsh['bands']} bands x {naive_lsh['rows']} rows "
          f"(P = {catch_probability(cfg.threshold, naive_lsh['bands'], naive_lsh['rows']):.2f})"
          f", candidates trusted\n")
    print(f"{'pairs vs exact Jaccard':34} {'true pairs':>10} {'LSH recall':>10} "
          f"{'both kept':>9} {'recall':>7} {'dropped':>8} {'precision':>9}")
    full_pairs, subset_pairs = true_pairs(corpus, cfg), true_pairs(subset, cfg)
    for name, frame, pairs, dups, lsh in (
            ("dedup stage, full corpus", corpus, full_pairs, full_dups,
             stage_lsh(corpus, cfg, {i for p in full_pairs for i in p})),
            ("naive datasketch, subset", subset, subset_pairs, naive_dups, naive_lsh),
            ("dedup stage, subset", subset, subset_pairs, subset_dups,
             stage_lsh(subset, cfg, {i for p in subset_pairs for i in p}))):
        acc = pair_accuracy(frame, pairs, dups, lsh, cfg)
        print(f"{name:34} {acc['true_pairs']:>10,} {acc['candidates']:>10.4f} {acc['left']:>9,} "
              f"{acc['recall']:>7.4f} {acc['dropped']:>8,} {acc['precision']:>9.4f}")
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


def choose_ngram(args: argparse.Namespace) -> None:
    """Which word n-gram size finds short records with a few words edited, without calling
    distinct records duplicates? Measured on the real records of sample_data: each is cut
    to 20, 40 and 60 words; copies with 1, 2 or 3 words edited (at most 5% of the words)
    should reach the threshold, distinct records of the same length should not."""
    rng = np.random.default_rng(args.seed)
    records = pd.read_json(ROOT / "sample_data" / "real.jsonl", lines=True)["text"]
    tokens = [t.split() for t in records]
    vocab = sorted({w for ws in tokens for w in ws})
    print(f"{len(records)} real records from sample_data; threshold {args.threshold}\n")
    print(f"{'n':>2} {'words':>5} {'edits':>5} {'copies found':>13} "
          f"{'distinct pairs >= threshold':>28} {'max distinct J':>15}")
    verdict = {}
    for n in range(1, 7):
        shingler = Shingler(n)
        sets = lambda ws: shingler.shingles(" ".join(dedup.normalize(" ".join(ws)).split()))
        ok = True
        for length in (20, 40, 60):
            cut = [ws[:length] for ws in tokens if len(ws) >= length]
            base_sets = [sets(ws) for ws in cut]
            distinct = [jaccard(base_sets[i], base_sets[j]) for i in range(len(cut))
                        for j in range(i + 1, len(cut))]
            false = sum(s >= args.threshold for s in distinct)
            edits = max(1, length // 20)
            found = np.mean([jaccard(s, sets(edit(ws, edits / length, vocab, rng)))
                             >= args.threshold for ws, s in zip(cut, base_sets)])
            ok &= found >= 0.95 and false == 0
            print(f"{n:>2} {length:>5} {edits:>5} {found:>13.3f} "
                  f"{f'{false} of {len(distinct):,}':>28} {max(distinct):>15.3f}")
        verdict[n] = ok
    good = [n for n, ok in verdict.items() if ok]
    print(f"\nn that find >= 95% of the edited copies at every length with no distinct pair "
          f"at the threshold: {good}; the default is the largest (the most specific): "
          f"{max(good) if good else None}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--baseline-docs", type=int, default=3_000,
                        help="documents (whole families) for the naive baseline")
    parser.add_argument("--ngram", type=int, default=5, help="word n-gram size (the issue's "
                        "figures use 5 on 50-300 word documents)")
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--learn-threshold", action="store_true",
                        help="the stage learns its Jaccard bar from the real records (the "
                             "default config); without, the fixed --threshold, as the naive "
                             "baseline has")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--choose-ngram", action="store_true",
                        help="measure which shingle size suits short records")
    args = parser.parse_args()
    choose_ngram(args) if args.choose_ngram else benchmark(args)


if __name__ == "__main__":
    main()
