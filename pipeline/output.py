"""The output writer: owns --out DIR, its replacement and the recovery of interrupted runs.

Four promises, whatever happens to the process (an exception, ^C, SIGTERM, kill -9, a full
disk, a concurrent run on the same DIR):

1. **Only synthgate's own files are ever removed.** Every output carries a manifest,
   `.synthgate-manifest.json`, written last, that lists the files the run wrote and the
   synthgate version. A non-empty DIR without one is not a previous output and is refused
   (a folder that merely holds a `report.json` is the user's); a previous output that has
   gained files synthgate did not write (notes, a copied input) is refused too, naming them:
   the user moves them, synthgate never deletes or carries them. Removing an old output
   removes only the names its manifest lists, then the folder if that left it empty.
   A folder synthgate writes (`train/` with --format hf) is listed file by file
   (`train/state.json`, ...): a file someone added inside it is foreign like any other, and
   removal unlinks the listed files, never through a symbolic link, then the folders it
   emptied.
2. **DIR always holds one complete output**, the old one or the new one. The new output is
   written into `.DIR.tmp-PID-TOKEN` beside DIR, then swapped in with one
   `renameat2(RENAME_EXCHANGE)` (Linux >= 3.15, through ctypes): there is no moment without
   DIR, so kill -9 at any instant leaves the old or the new output. Where the exchange is not
   available (another OS, a filesystem that refuses it), DIR is renamed to `.DIR.old-PID-TOKEN`
   and the new one renamed in; a kill between those two renames is repaired by the next run,
   which renames the old output back before doing anything else (see `recover`).
3. **^C and SIGTERM never cut a swap in half**: both are blocked from just before the swap to
   just after the old output is removed; one that arrived meanwhile is acted on after, with a
   message saying the new output is complete.
4. **Leftovers of dead runs are cleaned** at the next run on the same DIR: a temporary folder
   is known dead because its writer holds an flock on it for its whole life; the swap itself
   (and the cleanup) run under an flock on DIR's parent folder, so two runs never swap at once
   and a cleanup never races a swap.

A disk-full (or any OS) error while writing names the output file it was writing.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import errno
import json
import os
import re
import secrets
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from . import report as report_mod
from .readers import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locks, the rest still holds
    fcntl = None

MANIFEST = ".synthgate-manifest.json"
MANIFEST_KIND = "synthgate output"
# Every name an output may hold; only these are removed from a dead run's temporary folder,
# whose manifest may not be written yet.
OUTPUT_NAMES = frozenset({"train.parquet", "train.jsonl", "train", "decisions.parquet",
                          "decisions", "report.json", "report.html", "README.md", MANIFEST})


# ----------------------------------------------------------------------------- manifest

def read_manifest(directory: Path) -> list[str] | None:
    """The names a synthgate output's manifest lists, or None when `directory` holds no
    valid manifest (then it is not a synthgate output)."""
    try:
        with open(directory / MANIFEST, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND:
        return None
    files = data.get("files")
    if not isinstance(files, list) or not all(_relative(f) for f in files):
        return None
    return files


def _relative(name: object) -> bool:
    """A manifest entry: a relative POSIX path inside the output, no '.', '..' or empty part
    (an entry that could reach outside the folder makes the manifest invalid)."""
    return isinstance(name, str) and bool(name) and not name.startswith("/") and all(
        part not in ("", ".", "..") for part in name.split("/")) and "\\" not in name


def _manifest_text(files: list[str], version: str) -> str:
    return json.dumps({"kind": MANIFEST_KIND, "synthgate_version": version,
                       "files": sorted(files)}, indent=2) + "\n"


# ----------------------------------------------------------------------------- checks

def target(out: str | Path) -> Path:
    """The folder the output goes to: absolute, and through a symlink to where it points
    (the swap then happens there and the link keeps pointing at the output)."""
    out = Path(os.path.abspath(out))
    if out.is_symlink():
        out = Path(os.path.realpath(out))
    return out


def check_out_dir(out: str | Path) -> None:
    """Refuses an --out that synthgate may not replace (InputError, exit 2): a file, a
    non-empty folder without synthgate's manifest, or a previous output holding files
    synthgate did not write."""
    out = target(out)
    if out.parent == out:
        raise InputError(f"{out}: --out cannot be the root folder")
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"{out}: --out exists and is not a directory")
    try:
        entries = sorted(os.listdir(out))
    except OSError as exc:
        raise InputError(f"{out}: --out cannot be listed ({exc.strerror or exc})") from None
    if not entries:
        return
    listed = read_manifest(out)
    if listed is None:
        raise InputError(f"{out}: --out is a non-empty directory that is not a synthgate "
                         f"output (no {MANIFEST}); refusing to replace it")
    foreign = foreign_entries(out, entries, listed)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3
                                          else "")
        raise InputError(f"{out}: --out is a previous synthgate output that now also holds "
                         f"files synthgate did not write ({shown}); synthgate never deletes "
                         f"those: move them away or choose another --out")


def foreign_entries(out: Path, entries: list[str], listed: list[str]) -> list[str]:
    """What `out` holds that its manifest does not list: top-level names, and inside a
    folder whose files are listed one by one, any other file, folder or link (relative
    paths)."""
    names = set(listed)
    tops = {name.split("/", 1)[0] for name in listed}
    foreign = [e for e in entries if e != MANIFEST and e not in tops]
    for top in sorted(tops - names):   # a folder listed file by file
        folder = out / top
        if folder.is_symlink() or not folder.is_dir():
            if os.path.lexists(folder):
                foreign.append(top)
            continue
        for root, dirs, files in os.walk(folder):
            rel_root = os.path.relpath(root, out).replace(os.sep, "/")
            for d in list(dirs):
                rel = f"{rel_root}/{d}"
                if os.path.islink(os.path.join(root, d)) or not any(
                        n.startswith(rel + "/") for n in names):
                    foreign.append(rel)
                    dirs.remove(d)   # never walked into: not ours
            foreign += [f"{rel_root}/{f}" for f in files if f"{rel_root}/{f}" not in names]
    return sorted(foreign)


def prepare(out: str | Path) -> None:
    """Before a run's work: repair what a dead run left at `out`, then check it may be
    replaced, so a refusal comes before minutes of work, not after."""
    out = target(out)
    if out.parent.is_dir():
        recover(out)
    check_out_dir(out)


# ----------------------------------------------------------------------------- locks

@contextlib.contextmanager
def _flock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """An exclusive flock on a folder; yields False when `blocking` is off and another
    process holds it."""
    if fcntl is None:  # pragma: no cover
        yield True
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        except OSError:   # a filesystem without flock (some network ones): unlocked, as
            pass          # before; the swap itself is still one rename or exchange
        yield True
    finally:
        os.close(fd)   # closing the last descriptor releases the lock


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """^C and SIGTERM wait until the block ends (they cannot split a swap); their effect
    comes after it."""
    can = threading.current_thread() is threading.main_thread() \
        and hasattr(signal, "pthread_sigmask")
    if not can:  # pragma: no cover
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)   # a pending ^C raises here


# ----------------------------------------------------------------------------- renames

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_NOT_SUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}


def _renameat2_fn():
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _renameat2_fn()


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2(src, dst, flags); False when the system or filesystem lacks it."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in _NOT_SUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def _leftover(out: Path, kind: str) -> Path:
    return out.with_name(f".{out.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def _leftovers(out: Path) -> list[tuple[str, Path]]:
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(tmp|old)-\d+-[0-9a-f]{{8}}")
    try:
        names = sorted(os.listdir(out.parent))
    except OSError:
        return []
    return [(m.group(1), out.parent / name) for name in names
            if (m := pattern.fullmatch(name)) and (out.parent / name).is_dir()
            and not (out.parent / name).is_symlink()]


def _remove_output(directory: Path) -> bool:
    """Removes what synthgate wrote in `directory` (the names its manifest lists, or, with no
    manifest, the names an output may have), the manifest last, then the folder if empty.
    Returns whether the folder is gone; a folder holding anything else is left."""
    listed = read_manifest(directory)
    names = set(listed) if listed is not None else set(OUTPUT_NAMES)
    names.discard(MANIFEST)
    folders: set[str] = set()
    for name in sorted(names):
        path = directory / name
        if "/" in name:   # a file inside a folder synthgate wrote: only that file goes
            parts = name.split("/")[:-1]
            chain = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
            if any((directory / c).is_symlink() or not (directory / c).is_dir()
                   for c in chain):
                continue   # the folder was replaced by a link or a file: never followed
            folders.update(chain)
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                if not path.is_dir() or path.is_symlink():
                    path.unlink()
            continue
        try:
            # A whole folder is removed only where the entry names it whole: a dead run's own
            # temporary folder (no manifest yet, nobody else writes there) or an output of a
            # version that listed folders by name.
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            pass
    for folder in sorted(folders, key=lambda f: -f.count("/")):
        with contextlib.suppress(OSError):   # not empty: holds what synthgate did not write
            (directory / folder).rmdir()
    with contextlib.suppress(FileNotFoundError):
        (directory / MANIFEST).unlink()
    try:
        directory.rmdir()
        return True
    except FileNotFoundError:
        return True
    except OSError:   # not empty: something synthgate did not write; never removed
        return False


def _complete(directory: Path) -> bool:
    listed = read_manifest(directory)
    return listed is not None and all((directory / name).exists() for name in listed)


def recover(out: str | Path) -> None:
    """Repairs what dead runs left beside `out`: the old output renamed back when a run died
    between the two renames of the fallback swap (DIR missing), then every dead run's
    temporary and old folders removed (synthgate's files only). A live run's temporary folder
    is never touched (its writer holds an flock on it)."""
    out = target(out)
    with _flock(out.parent), _signals_deferred():
        leftovers = _leftovers(out)
        if not out.exists():
            olds = [p for kind, p in leftovers if kind == "old" and _complete(p)]
            if olds:
                os.rename(max(olds, key=lambda p: p.stat().st_mtime_ns), out)
        for kind, path in _leftovers(out):
            if kind == "tmp":
                with _flock(path, blocking=False) as free:
                    if free:
                        _remove_output(path)
            else:
                _remove_output(path)


# ----------------------------------------------------------------------------- writing

def _parquet_writable(kind) -> bool:
    """Whether Parquet can store an Arrow type: not a struct without fields (what `{}` in a
    JSON record becomes), at any depth."""
    import pyarrow as pa
    if pa.types.is_struct(kind):
        return kind.num_fields > 0 and all(_parquet_writable(kind.field(i).type)
                                           for i in range(kind.num_fields))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) \
            or pa.types.is_fixed_size_list(kind):
        return _parquet_writable(kind.value_type)
    if pa.types.is_map(kind):
        return _parquet_writable(kind.key_type) and _parquet_writable(kind.item_type)
    return True


def arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns pyarrow cannot type (mixed kinds across input files) or Parquet cannot store
    (an empty object) become JSON strings; column names become text that UTF-8 can encode
    (a lone surrogate written as its escape)."""
    import pyarrow as pa
    frame = frame.copy()
    for col in frame.columns:
        try:
            if not _parquet_writable(pa.array(frame[col], from_pandas=True).type):
                raise pa.ArrowNotImplementedError("not storable in Parquet")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError,
                OverflowError, UnicodeEncodeError):
            frame[col] = [None if v is None or (isinstance(v, float) and np.isnan(v))
                          else json.dumps(v, ensure_ascii=False, default=str)
                          .encode("utf-8", "backslashreplace").decode("utf-8")
                          for v in frame[col].tolist()]
    frame.columns = [str(c).encode("utf-8", "backslashreplace").decode("utf-8")
                     for c in frame.columns]
    return frame


def _json_plain(value: Any) -> Any:
    """A value JSON lines can hold: bytes (a Parquet binary column) as base64 text, at any
    depth; pandas' JSON writer would try to decode them as UTF-8 and fail."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {k: _json_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_plain(v) for v in value]
    return value


def _arrow_plain(dtype) -> bool:
    """Whether an Arrow-backed column (a dataset's) is numbers, booleans or text, which
    pandas' JSON writer handles as they are."""
    import pyarrow as pa
    t = dtype.pyarrow_dtype
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_string(t) or pa.types.is_large_string(t))


def json_safe(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.ArrowDtype) and not _arrow_plain(frame[col].dtype):
            # Lists, structs, binary, dates of a dataset: as Python values, like a JSON input's
            frame[col] = pd.Series([None if v is pd.NA else _json_plain(v)
                                    for v in frame[col].tolist()], dtype=object,
                                   index=frame.index)
        elif frame[col].dtype == object and any(
                isinstance(v, (bytes, bytearray, dict, list, tuple, np.ndarray))
                for v in frame[col].tolist()):
            frame[col] = [_json_plain(v) for v in frame[col].tolist()]
    return frame


# Our columns of the training set: their types are ours, whatever an input declared.
_OWN_COLUMNS = ("id", "source", "text")


def _write_hf(table, features: dict[str, dict] | None, path: Path) -> tuple[Any, list]:
    """The training set as a `datasets` save_to_disk folder at `path`, the input's features
    (ClassLabel names, fixed-length lists, Array2D...) given back to the columns that
    declared them. Returns (the Dataset, its features as the card's YAML list)."""
    from . import sources

    datasets = sources.need("datasets", "--format hf")
    sources._quiet_datasets(datasets)
    import pyarrow as pa

    table = table.replace_schema_metadata(None)   # pandas' metadata is not the dataset's
    for name in _OWN_COLUMNS:   # Value("string"), as datasets types text, unless too large
        i = table.schema.get_field_index(name)
        if i >= 0 and pa.types.is_large_string(table.schema.field(i).type):
            try:
                table = table.set_column(i, name, table.column(i).cast(pa.string()))
            except (pa.ArrowInvalid, OverflowError):   # a chunk over 2 GiB: stays large
                pass
    inferred = datasets.Features.from_arrow_schema(table.schema)
    known = {k: datasets.Features.from_dict({k: v})[k] for k, v in (features or {}).items()
             if k in inferred and k not in _OWN_COLUMNS}
    ds = datasets.Dataset(datasets.table.InMemoryTable(table))
    if known:
        try:
            ds = ds.cast(datasets.Features({n: known.get(n, inferred[n]) for n in inferred}))
        except Exception as exc:   # values that no longer fit the declared type
            print(f"synthgate: warning: the training set keeps the inferred types of "
                  f"{', '.join(sorted(known))}: their input features do not fit the kept "
                  f"values ({type(exc).__name__}: {exc})", file=sys.stderr)
    ds.save_to_disk(str(path))
    return ds, ds.features._to_yaml_list()


def _files_under(root: Path, folder: str) -> list[str]:
    """Every file under root/folder, as manifest entries ("train/state.json")."""
    out = []
    for base, _, files in os.walk(root / folder):
        rel = os.path.relpath(base, root).replace(os.sep, "/")
        out += [f"{rel}/{f}" for f in files]
    return sorted(out)


def _write_files(result: Any, tmp: Path, out: Path, fmt: str, version: str,
                 html=None, features: dict[str, dict] | None = None,
                 inputs: dict[str, list[str]] | None = None, write_data=None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from . import card

    def writing(name: str, write) -> None:
        try:
            write(tmp / name)
        except OSError as exc:   # disk full, quota, file too large: name the output file
            raise OSError(exc.errno, f"{exc.strerror or exc} (while writing it; {out} is left "
                                     f"as it was)", str(out / name)) from None

    sharded = write_data is not None
    if sharded:
        # An engine that streams its records (engines/ray) writes train.parquet/ and
        # decisions.parquet/ as Parquet dataset folders (train.jsonl as one file) into the
        # temporary folder itself; the report is complete after. It returns the files it
        # wrote, the training set's Arrow schema and its size.
        data_files, schema, num_bytes = write_data(tmp, writing)
        train_files = [f for f in data_files if f.split("/")[0] in ("train.parquet",
                                                                    "train.jsonl")]
        feature_list = card.features_yaml(schema, features) if schema is not None else None
        files = [*data_files, "report.json", "report.html", "README.md"]
    else:
        train = arrow_safe(result.kept)
        if fmt == "jsonl":
            plain = json_safe(train)
            table = pa.Table.from_pandas(plain, preserve_index=False)
            writing("train.jsonl", lambda p: plain.to_json(p, orient="records", lines=True,
                                                           force_ascii=False,
                                                           date_format="iso"))
            train_files = ["train.jsonl"]
            feature_list = card.features_yaml(table.schema, features)
        elif fmt == "hf":
            table = pa.Table.from_pandas(train, preserve_index=False)
            written: list = []
            writing("train", lambda p: written.extend(_write_hf(table, features, p)))
            train_files = _files_under(tmp, "train")
            feature_list = written[1]
        else:
            table = pa.Table.from_pandas(train, preserve_index=False)
            writing("train.parquet", lambda p: pq.write_table(table, p))
            train_files = ["train.parquet"]
            feature_list = card.features_yaml(table.schema, features)
        num_bytes = table.nbytes
        files = [*train_files, "decisions.parquet", "report.json", "report.html", "README.md"]
        writing("decisions.parquet", lambda p: result.decisions.to_parquet(p, index=False))
    if callable(html):
        html = html()
    writing("report.json", lambda p: p.write_text(report_mod.to_json(result.report),
                                                  encoding="utf-8"))
    page = html if html is not None else report_mod.to_html(result.report)
    writing("report.html", lambda p: p.write_text(page, encoding="utf-8"))
    size = sum((tmp / f).stat().st_size for f in train_files
               if fmt != "hf" or f.endswith(".arrow"))
    text = card.build(result.report, fmt=fmt, features=feature_list, num_bytes=num_bytes,
                      download_size=size, inputs=inputs, sharded=sharded)
    writing("README.md", lambda p: p.write_text(text, encoding="utf-8"))
    # Last: a folder with a manifest is a complete output.
    writing(MANIFEST, lambda p: p.write_text(_manifest_text(files, version), encoding="utf-8"))


def _swap(tmp: Path, out: Path, exchange: bool) -> None:
    """Puts the complete output `tmp` at `out` and removes the old one (under the lock)."""
    check_out_dir(out)   # again, under the lock: what a concurrent hand changed
    if not out.exists():
        if exchange and _renameat2(tmp, out, _RENAME_NOREPLACE):
            return
        os.rename(tmp, out)   # fails on a non-empty folder that appeared meanwhile
        return
    if exchange and _renameat2(tmp, out, _RENAME_EXCHANGE):
        _remove_output(tmp)   # tmp's name now holds the old output
        return
    old = _leftover(out, "old")
    os.rename(out, old)
    try:
        os.rename(tmp, out)   # a kill before this line: `recover` renames `old` back
    except BaseException:
        os.rename(old, out)
        raise
    _remove_output(old)


def write_outputs(result: Any, out: str | Path, fmt: str, version: str,
                  exchange: bool = True, html=None,
                  features: dict[str, dict] | None = None,
                  inputs: dict[str, list[str]] | None = None, write_data=None) -> None:
    """Writes train, decisions, report.json/html, the dataset card README.md and the manifest
    into a temporary folder beside `out`, then swaps it in (module docstring). `html` is the
    page built from the records (report_html); without it the page is drawn from the report
    alone. `features` are the input's `datasets` features of the original columns (--format
    hf gives them back); `inputs` the input names the card lists per source.
    `exchange=False` uses the fallback swap even where renameat2 exists (tests exercise
    both). `write_data(tmp, writing)`, when given, writes the records itself (folders of
    shards) and returns (the files it wrote, the training set's Arrow schema or None, its
    size in bytes); `html` may then be a callable, called after it."""
    out = target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    prepare(out)
    tmp = _leftover(out, "tmp")
    swapped = False
    with contextlib.ExitStack() as held:
        # Made and locked under the parent's lock, so a concurrent `recover` never sees it
        # unlocked; the lock is held for its whole life: it is not a leftover.
        with _flock(out.parent):
            os.mkdir(tmp)   # 0o777 less the umask: the output is not private
            held.enter_context(_flock(tmp))
        try:
            _write_files(result, tmp, out, fmt, version, html, features, inputs, write_data)
            with _flock(out.parent):
                try:
                    with _signals_deferred():
                        _swap(tmp, out, exchange)
                        swapped = True
                except KeyboardInterrupt:
                    if not swapped:
                        raise
                    raise KeyboardInterrupt(f"{out} holds this run's complete output") \
                        from None
        except BaseException:
            if not swapped:
                _remove_output(tmp)
            raise
