"""Where the data lives: the inputs that are not plain local files.

An input (`--real`, `--synthetic`, `--input`, `--benchmark`, or the Python API's arguments) is
one of:

- a local file, directory or glob: `ingest.resolve_paths`, through the reader layer's checks;
- a directory written by `datasets` `save_to_disk` (a `Dataset`, or a `DatasetDict`, whose
  split `--split` names), recognized by its files: `state.json` beside `dataset_info.json`, or
  `dataset_dict.json`. Inside a directory walk such a folder is one dataset, not JSON files;
- `hf:OWNER/NAME[:CONFIG][@SPLIT]`, loaded with `datasets.load_dataset` (from the local cache
  when HF_DATASETS_OFFLINE=1);
- an fsspec URL (`s3://`, `gs://`, `hf://datasets/...`, `memory://`, or chained as
  `simplecache::s3://...`): its files, directories and globs go through the same format
  parsers, decompression checks and encodings as local files (`readers.RemoteFile`). A
  `file://` URL is a local path and gets every local check (regular files only, no FIFO);
- from Python: a `datasets.Dataset`, `IterableDataset` or `DatasetDict`, a `pyarrow.Table`, a
  polars DataFrame.

A dataset becomes a pandas frame whose columns stay Arrow memory (`pd.ArrowDtype`, no copy;
memory-mapped for a dataset read from disk): only the columns ingest reads value by value (the
text or the template's fields, the id, the source and the generation) become Python objects.
The other columns stay Arrow until the kept rows are taken and written, and the dataset's
`datasets` features (ClassLabel names, fixed-length lists, Array2D...) travel in
`frame.attrs["features"]` so `--format hf` and the dataset card give them back.

`datasets` (and fsspec, which it brings) is the optional extra `synthgate[hf]`: nothing here
imports it until a spec needs it, and without it the message names the extra to install.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd

from .readers import InputError, RemoteFile

HF_EXTRA = "synthgate[hf]"
# Files `save_to_disk` writes: a Dataset folder, and the top of a DatasetDict folder.
DATASET_FILES = ("state.json", "dataset_info.json")
DATASET_DICT_FILE = "dataset_dict.json"

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*(::[A-Za-z][A-Za-z0-9+.\-]*)*://")
_HF_SPEC = re.compile(r"hf:(?P<repo>[^\s:@/]+(?:/[^\s:@/]+)?)(?::(?P<config>[^\s@]+))?"
                      r"(?:@(?P<split>\S+))?")


def need(module: str, what: str):
    """Imports an optional dependency, or InputError naming the extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InputError(f"{what} needs the optional package '{module}', which is not "
                         f"installed ({exc}); install it with: pip install '{HF_EXTRA}'"
                         ) from None


def _quiet_datasets(datasets) -> None:
    """synthgate draws its own progress; `datasets`' bars would break --quiet."""
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
    try:   # its retry notices while it waits on a missing network; our message says it once
        import huggingface_hub
        huggingface_hub.utils.logging.set_verbosity_error()
    except (ImportError, AttributeError):  # pragma: no cover
        pass


# ----------------------------------------------------------------------------- specs

def is_hf_spec(spec: str) -> bool:
    return spec.startswith("hf:") and not spec.startswith("hf://")


def is_url(spec: str) -> bool:
    return bool(_URL.match(spec))


def local_path_of_url(spec: str) -> Path | None:
    """The local path a plain `file://` URL names (percent-escapes decoded); None for any
    other URL."""
    if not spec.lower().startswith("file://") or "::" in spec:
        return None
    parts = urlsplit(spec)
    if parts.netloc not in ("", "localhost"):
        raise InputError(f"{spec}: a file:// URL names a file on this machine (file:///path); "
                         f"host {parts.netloc!r} is not this machine")
    return Path(unquote(parts.path))


def public_name(spec: str) -> str:
    """A spec as a message or the dataset card may show it: a URL without user, password or
    query string (where tokens travel)."""
    if not is_url(spec) or is_hf_spec(spec):
        return spec
    head, _, rest = spec.rpartition("://")
    parts = urlsplit("x://" + rest)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{head}://{host}{parts.path}"


def is_dataset_dir(path: Path) -> bool:
    """Whether a local folder is a `save_to_disk` output (Dataset or DatasetDict)."""
    return (path / DATASET_DICT_FILE).is_file() or all((path / n).is_file()
                                                        for n in DATASET_FILES)


# ----------------------------------------------------------------------------- sources

class DatasetSource:
    """A dataset read whole as one Arrow table: a `save_to_disk` folder (local or fsspec), a
    Hub dataset (`hf:`), or an object given to the API. It answers what ingest asks of a file
    (str() for messages; name/stem for naming a benchmark)."""

    def __init__(self, label: str, kind: str, target: Any, split: str | None = None,
                 config: str | None = None):
        self.label, self.kind, self.target = label, kind, target
        self.split, self.config = split, config

    def __str__(self) -> str:
        return self.label

    def __repr__(self) -> str:
        return f"DatasetSource({self.label!r})"

    @property
    def name(self) -> str:
        """A short name (a benchmark is named by it): the Hub dataset's or the folder's."""
        if self.kind == "object":
            return self.label
        return str(self.target).rstrip("/").rsplit("/", 1)[-1] or self.label

    stem = name
    suffixes: list[str] = []

    @property
    def parent(self):
        return Path(self.label.rstrip("/")).parent

    def read(self) -> pd.DataFrame:
        """The dataset as a frame of Arrow-backed columns, `attrs["features"]` holding its
        `datasets` features (as dicts) when it has them."""
        if self.kind == "hub":
            table, features = _load_hub(self)
        elif self.kind == "disk":
            table, features = _load_disk(self)
        else:
            table, features = object_table(self.target, self.label, self.split)
        return arrow_frame(table, self.label, features)


def hub_source(spec: str, split: str | None) -> DatasetSource:
    m = _HF_SPEC.fullmatch(spec)
    if not m:
        raise InputError(f"{spec}: expected hf:OWNER/NAME[:CONFIG][@SPLIT] (e.g. "
                         f"hf:stanfordnlp/imdb@train)")
    chosen = m.group("split") or split
    return DatasetSource(spec, "hub", m.group("repo"), split=chosen, config=m.group("config"))


def disk_source(target: Path | str, split: str | None, label: str | None = None
                ) -> DatasetSource:
    """A save_to_disk folder, local or an fsspec URL (`target`, which may hold credentials;
    `label` is what messages show)."""
    return DatasetSource(label or str(target), "disk", str(target), split=split)


def _pick_split(dd, split: str | None, label: str, how: str = "--split"):
    names = list(dd.keys())
    if split is None:
        if len(names) == 1:
            return dd[names[0]], names[0]
        raise InputError(f"{label}: a dataset with splits {', '.join(names) or 'none'}; "
                         f"choose one with {how}")
    if split not in dd:
        raise InputError(f"{label}: no split '{split}' (splits: {', '.join(names) or 'none'})")
    return dd[split], split


def _features_dict(features) -> dict[str, dict] | None:
    return None if features is None else features.to_dict()


def _dataset_table(ds):
    """A Dataset's rows as a pyarrow Table: the memory-mapped table itself when the dataset
    has no index mapping (no copy), else the selected rows taken."""
    return ds.with_format("arrow")[:]


def _load_disk(src: DatasetSource):
    datasets = need("datasets", f"{src.label} (a datasets save_to_disk folder)")
    _quiet_datasets(datasets)
    try:
        loaded = datasets.load_from_disk(src.target)
    except FileNotFoundError as exc:
        raise InputError(f"{src.label}: not a readable save_to_disk folder ({exc})") from None
    except Exception as exc:
        raise InputError(f"{src.label}: cannot load the save_to_disk folder "
                         f"({type(exc).__name__}: {_first_line(exc)})") from None
    if isinstance(loaded, datasets.DatasetDict):
        loaded, chosen = _pick_split(loaded, src.split, src.label,
                                     f"--split, or name the split's folder "
                                     f"({src.label.rstrip('/')}/{next(iter(loaded))})")
        src.label = f"{src.label} [split {chosen}]"
    return _dataset_table(loaded), _features_dict(loaded.features)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[:2]) if text else type(exc).__name__


def user_offline(names=("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
                 ) -> bool:
    """Whether the user asked for offline mode (as the environment was when synthgate was
    imported: the embedding stage sets HF_HUB_OFFLINE for its own model load later)."""
    from . import USER_HF_OFFLINE
    return any((USER_HF_OFFLINE.get(v) or "").upper() in ("1", "ON", "YES", "TRUE")
               for v in names)


@contextlib.contextmanager
def hub_mode(online: bool):
    """huggingface_hub (and datasets, when loaded) online or offline for the block, whatever
    the environment says now: their offline flags are read at their import, which may come
    after synthgate set HF_HUB_OFFLINE for the model."""
    flags = []
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        flags.append((hub, "HF_HUB_OFFLINE"))
    config = sys.modules.get("datasets.config")
    if config is not None:
        flags += [(config, "HF_HUB_OFFLINE"), (config, "HF_DATASETS_OFFLINE")]
    saved = [(obj, name, getattr(obj, name)) for obj, name in flags if hasattr(obj, name)]
    for obj, name, _ in saved:
        setattr(obj, name, not online)
    try:
        yield
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)


def _load_hub(src: DatasetSource):
    datasets = need("datasets", f"{src.label} (a Hugging Face dataset)")
    _quiet_datasets(datasets)
    label = src.label
    offline = user_offline()
    try:
        with hub_mode(online=not offline):
            loaded = datasets.load_dataset(src.target, src.config, split=src.split)
    except (ConnectionError, FileNotFoundError) as exc:
        # Offline (or no network) and not cached: datasets says "Couldn't reach ... on the
        # Hub" for a dataset it never saw, "not cached" when it looked in the cache.
        where = datasets.config.HF_DATASETS_CACHE
        if offline:
            raise InputError(f"{label}: not in the local Hugging Face cache ({where}) and "
                             f"offline mode is on (HF_DATASETS_OFFLINE / HF_HUB_OFFLINE): load "
                             f"it once with network access, or unset offline mode "
                             f"({_first_line(exc)})") from None
        raise InputError(f"{label}: cannot load it from the Hub and it is not in the local "
                         f"cache ({where}): {_first_line(exc)}") from None
    except Exception as exc:   # unknown config or split, gated repo, bad data files...
        raise InputError(f"{label}: cannot load ({type(exc).__name__}: {_first_line(exc)})"
                         ) from None
    if isinstance(loaded, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        loaded, chosen = _pick_split(loaded, None, label, "--split or hf:NAME@SPLIT")
        src.split = chosen
    if src.split and "@" not in label:
        src.label = f"{label}@{src.split}"
    return object_table(loaded, src.label, None)


# ----------------------------------------------------------------------------- objects

def _module_of(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def is_table_object(obj: Any) -> bool:
    """Whether the API was given a dataset object (not paths, not a pandas DataFrame)."""
    return _module_of(obj) in ("datasets", "pyarrow", "polars")


def object_table(obj: Any, label: str, split: str | None):
    """(pyarrow Table, features dict or None) of a `datasets`, pyarrow or polars object."""
    import pyarrow as pa

    module = _module_of(obj)
    if module == "datasets":
        datasets = sys.modules["datasets"]
        if isinstance(obj, (datasets.DatasetDict, datasets.IterableDatasetDict)):
            obj, _ = _pick_split(obj, split, label, "Config(split=...), or pass one split")
        if isinstance(obj, datasets.Dataset):
            return _dataset_table(obj), _features_dict(obj.features)
        if isinstance(obj, datasets.IterableDataset):
            # Streamed as Arrow batches: the rows never become Python dicts.
            batches = list(obj.with_format("arrow").iter(batch_size=10_000))
            features = _features_dict(obj.features)
            if not batches:
                schema = obj.features.arrow_schema if obj.features is not None else pa.schema([])
                return schema.empty_table(), features
            return pa.concat_tables(batches, promote_options="permissive"), features
    if module == "pyarrow":
        if isinstance(obj, pa.RecordBatch):
            obj = pa.Table.from_batches([obj])
        if isinstance(obj, pa.Table):
            return obj, schema_features(obj.schema)
    if module == "polars":
        to_arrow = getattr(obj, "to_arrow", None)
        if to_arrow is not None and hasattr(obj, "columns"):
            return to_arrow(), None
    raise InputError(f"{label}: a {type(obj).__module__}.{type(obj).__name__} cannot be "
                     f"read (give paths, a pandas or polars DataFrame, a pyarrow Table or a "
                     f"datasets Dataset)")


def schema_features(schema) -> dict[str, dict] | None:
    """The `datasets` features an Arrow schema carries in its metadata (a Dataset's table, a
    Parquet file written by `datasets`), as dicts; None when it carries none. No import of
    `datasets`: the metadata is JSON."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return None
    try:
        features = json.loads(raw)["info"]["features"]
    except (ValueError, KeyError, TypeError):
        return None
    return features if isinstance(features, dict) else None


def _plain_types(table):
    """View types (polars' strings) as their plain large types, which every pandas and
    Parquet version handles."""
    import pyarrow as pa

    fields = []
    changed = False
    for f in table.schema:
        t = f.type
        if hasattr(pa.types, "is_string_view") and pa.types.is_string_view(t):
            t, changed = pa.large_string(), True
        elif hasattr(pa.types, "is_binary_view") and pa.types.is_binary_view(t):
            t, changed = pa.large_binary(), True
        fields.append(pa.field(f.name, t, f.nullable, f.metadata))
    return table.cast(pa.schema(fields, table.schema.metadata)) if changed else table


def arrow_frame(table, label: str, features: dict[str, dict] | None) -> pd.DataFrame:
    """A pandas frame over the table's Arrow memory (no copy of the values), row-aligned."""
    import pyarrow as pa

    names = table.column_names
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(f"{label}: columns: column '{dup}' appears twice")
    table = _plain_types(table)
    try:   # Arrow strings must be UTF-8; a producer that skipped the check is caught here
        table.validate(full=True)
    except pa.ArrowInvalid as exc:
        raise InputError(f"{label}: invalid Arrow data ({exc})") from None
    frame = table.to_pandas(types_mapper=pd.ArrowDtype)
    frame.attrs["features"] = {k: v for k, v in (features or {}).items() if k in names}
    return frame
