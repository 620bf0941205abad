"""Scale benchmark: the local engine against `--engine ray` on one machine.

    python benchmarks/scale.py --docs 1000000 --stages dedup          # dedup only
    python benchmarks/scale.py --docs 100000 --stages all --hashed    # every stage

The corpus is benchmarks/dedup.py's (documents of 50-300 Zipf-distributed pseudo-words with
planted near and exact duplicates, half real, half synthetic), written as 16 JSON-lines shards
per source into the git-ignored `.bench-data/scale-DOCS/` (kept for the next run). Each engine
runs as its own process, as a user runs it (`synthgate run ... --out DIR --quiet`, with
`--engine ray` and a local Ray instance of `--cpus` CPUs and an object store of
`--object-store-gib`, Ray's default of 30% of memory unless given, for the Ray run), and is
measured from launch to exit:

- wall time and records/s;
- the peak resident set of every process of its tree (the driver, Ray's GCS and raylet,
  every Ray worker): the kernel's high-water mark (VmHWM) read every 0.2 s, so a process is
  counted at its own peak; the largest one and the sum of the peaks are printed, and beside
  them the largest private memory (RssAnon) seen: VmHWM also counts the pages of Ray's
  shared object store a process touched, one store however many processes map it;
- the decision agreement: the share of records whose (kept, reasons, dup_of) are the same in
  both runs, joined on (source, id), and whether every input record is decided exactly once.

`--hashed` embeds with the deterministic hashed n-gram embedder of tests/conftest.py (through
the Python API, which takes an embedder; the CLI does not): the real model would take hours
for 100,000 records on 2 CPUs. Without it, stages beyond dedup embed with the bundled model
(ONNX on CPU), each engine into an empty vector cache of its own. Timings depend on the
machine's load: compare the ratios of one run.
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

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from dedup import make_corpus, process_tree  # noqa: E402

SHARDS = 16


def corpus(docs: int) -> Path:
    folder = ROOT / ".bench-data" / f"scale-{docs}"
    if (folder / "done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    frame = make_corpus(docs, seed=0)
    for source in ("real", "synthetic"):
        part = frame.loc[frame["source"] == source, ["id", "text"]].reset_index(drop=True)
        (folder / source).mkdir(exist_ok=True)
        for k in range(SHARDS):
            part.iloc[k::SHARDS].to_json(folder / source / f"{k:02d}.jsonl", orient="records",
                                         lines=True, force_ascii=False)
    (folder / "done").write_text("")
    del frame   # the runs measured next must not share the machine with the corpus
    return folder


class PeakPerProcess:
    """The high-water mark of each process of a tree (VmHWM), read every 0.2 s, and the
    largest private resident memory seen (RssAnon): VmHWM also counts the pages of Ray's
    shared-memory object store a process has touched, which are one store, bounded by its
    configured size, however many processes map them."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peaks: dict[int, tuple[str, int]] = {}
        self.private: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        return process_tree(self.pid)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for pid in self._tree():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                fields = {line.split(":")[0]: int(line.split()[1]) * 1024
                          for line in status.splitlines()
                          if line.startswith(("VmHWM:", "RssAnon:"))}
                hwm = fields.get("VmHWM", 0)
                self.private[pid] = max(self.private.get(pid, 0), fields.get("RssAnon", 0))
                name = _name(cmd)
                if hwm > self.peaks.get(pid, ("", 0))[1]:
                    self.peaks[pid] = (name, hwm)
            time.sleep(0.2)

    def stop(self) -> tuple[dict[int, tuple[str, int]], dict[int, int]]:
        self._stop.set()
        self._thread.join()
        return self.peaks, self.private


def _name(cmd: list[bytes]) -> str:
    text = " ".join(c.decode(errors="replace") for c in cmd if c)
    for marker in ("gcs_server", "raylet", "dashboard", "log_monitor", "monitor.py",
                   "runtime_env", "ray::", "default_worker", "synthgate"):
        if marker in text:
            return {"default_worker": "ray worker", "ray::": "ray worker"}.get(marker, marker)
    return text[:40]


RUNNER = """
import sys
sys.path.insert(0, {tests!r})
from conftest import HashedNgramEmbedder
from synthgate import run
from synthgate.config import load
config = load({config!r})
result = run(real={real!r}, synthetic={synthetic!r}, config=config, out={out!r},
             embedder=HashedNgramEmbedder())
"""


def run_engine(folder: Path, engine: str, stages: str, args, work: Path) -> dict:
    out = work / f"out-{engine}"
    config = work / f"{engine}.toml"
    chosen = ["dedup", "formulaic", "embed", "mix"] if stages == "all" else stages.split(",")
    sections: dict[str, list[str]] = {"engine": [
        f'name = "{engine}"', f"num_cpus = {args.cpus}",
        f"object_store_gib = {args.object_store_gib}"]}
    if stages != "dedup" and not args.hashed:
        # Each engine embeds with the model into an empty vector cache of its own (the
        # exported ONNX model shared): the second run must not be served by the first.
        cache = work / f"cache-{engine}"
        cache.mkdir(exist_ok=True)
        exported = Path("~/.cache/synthgate/onnx").expanduser()
        if exported.is_dir() and not (cache / "onnx").exists():
            (cache / "onnx").symlink_to(exported)
        sections["embed"] = [f"cache_dir = {json.dumps(str(cache))}"]
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, name = key.rpartition(".")
        sections.setdefault(section, []).append(f"{name} = {value}")
    config.write_text(
        f"stages = {json.dumps(chosen)}\nmax_synthetic_share = 1.0\n"
        + "".join(f"[{k}]\n" + "".join(f"{line}\n" for line in v)
                  for k, v in sections.items()))
    real, synthetic = str(folder / "real"), str(folder / "synthetic")
    if args.hashed:
        command = [sys.executable, "-c", RUNNER.format(
            tests=str(ROOT / "tests"), config=str(config), real=real, synthetic=synthetic,
            out=str(out))]
    else:
        script = Path(sys.executable).with_name("synthgate")
        command = [str(script), "run", "--real", real, "--synthetic", synthetic, "--out",
                   str(out), "--config", str(config), "--quiet"]
    env = dict(os.environ, RAY_DATA_DISABLE_PROGRESS_BARS="1")
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=stderr, env=env)
        peaks = PeakPerProcess(process.pid)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace")
    found, private = peaks.stop()
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"{engine} run failed ({code}):\n{errors[-3000:]}")
    decisions = pd.read_parquet(out / ("decisions" if (out / "decisions").is_dir()
                                       else "decisions.parquet"))
    report = json.loads((out / "report.json").read_text())
    found[process.pid] = ("driver (synthgate)", max(found.get(process.pid, ("", 0))[1],
                                                    usage.ru_maxrss * 1024))
    return {"wall": wall, "peaks": found, "private": private, "decisions": decisions,
            "report": report}


def agreement(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    def keyed(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({
            "key": frame["source"].astype(str) + "\0" + frame["id"].astype(str),
            "kept": frame["kept"].astype(bool).to_numpy(),
            "reasons": ["|".join(r) for r in frame["reasons"]],
            "dup_of": [d if isinstance(d, str) else "" for d in frame["dup_of"]]})
    x, y = keyed(a), keyed(b)
    once = (not x["key"].duplicated().any()) and (not y["key"].duplicated().any())
    both = x.merge(y, on="key", suffixes=("_a", "_b"))
    same = ((both["kept_a"] == both["kept_b"]) & (both["reasons_a"] == both["reasons_b"])
            & (both["dup_of_a"] == both["dup_of_b"]))
    return {"records_a": len(x), "records_b": len(y), "joined": len(both),
            "every_record_once": bool(once and len(both) == len(x) == len(y)),
            "agreement": float(same.mean()) if len(both) else 1.0,
            "differ": int((~same).sum())}


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--stages", default="dedup", help="dedup, a list, or all")
    parser.add_argument("--hashed", action="store_true",
                        help="embed with the hashed test embedder (Python API)")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--object-store-gib", type=float, default=0.0,
                        help="the local Ray instance's object store (0: Ray's default, 30%% "
                             "of memory)")
    parser.add_argument("--engines", default="local,ray")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a config value (TOML), e.g. dedup.ngram=3")
    args = parser.parse_args()

    t0 = time.perf_counter()
    folder = corpus(args.docs)
    print(f"corpus: {args.docs:,} documents in {folder} ({time.perf_counter() - t0:.0f} s); "
          f"config: stages {args.stages}, {' '.join(args.set) or 'defaults'}")
    runs = {}
    with tempfile.TemporaryDirectory(prefix="synthgate-scale-") as tmp:
        for engine in args.engines.split(","):
            runs[engine] = run_engine(folder, engine, args.stages, args, Path(tmp))
            r = runs[engine]
            print(f"\n{engine}: {r['wall']:.1f} s, {args.docs / r['wall']:,.0f} records/s")
            by_name: dict[str, list[tuple[int, int]]] = {}
            for pid, (name, peak) in r["peaks"].items():
                by_name.setdefault(name, []).append((peak, r["private"].get(pid, 0)))
            for name, pairs in sorted(by_name.items(), key=lambda kv: -max(kv[1])[0]):
                print(f"  {name:<22} {len(pairs):>3} processes, largest peak "
                      f"{gib(max(p for p, _ in pairs))} (private "
                      f"{gib(max(a for _, a in pairs))})")
            stages = {s["name"]: s["seconds"] for s in r["report"]["stages"]}
            print(f"  steps (report.json): {stages}")
            for s in r["report"]["stages"]:
                if s.get("engine_steps"):
                    print(f"  {s['name']} on Ray: {s['engine_steps']}")
            near = r["report"].get("details", {}).get("dedup", {}).get("near", {})
            if near:
                print(f"  dedup: threshold {near.get('threshold')}, bands x rows "
                      f"{near.get('bands')} x {near.get('rows')}, candidate buckets "
                      f"{near.get('candidate_buckets')}, pairs checked "
                      f"{near.get('candidate_pairs_checked')}")
    print(f"\n| engine | documents | stages | wall | records/s | x local | largest process "
          f"peak RSS | largest private | sum of peaks | processes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    base = runs.get("local")
    for engine, r in runs.items():
        peaks = [p for _, p in r["peaks"].values()]
        ratio = (base["wall"] / r["wall"]) if base else float("nan")
        print(f"| {engine} | {args.docs:,} | {args.stages} | {r['wall']:.1f} s | "
              f"{args.docs / r['wall']:,.0f} | {ratio:.2f} | {gib(max(peaks))} | "
              f"{gib(max(r['private'].values()))} | {gib(sum(peaks))} | {len(peaks)} |")
    if "local" in runs and "ray" in runs:
        agree = agreement(runs["local"]["decisions"], runs["ray"]["decisions"])
        print(f"\ndecision agreement (kept, reasons, dup_of on (source, id)): "
              f"{agree['agreement']:.6f} ({agree['differ']} differ); every record once in "
              f"both: {agree['every_record_once']} ({agree['records_a']:,} / "
              f"{agree['records_b']:,} rows)")


if __name__ == "__main__":
    main()
