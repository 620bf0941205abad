"""Config: `init-config` documents every key and round-trips; bad keys and values are refused
with a message naming the key; command-line flags win over the file."""

import dataclasses
import json
import sys

import pytest

from synthgate import config as config_mod
from synthgate.cli import main
from synthgate.config import Config, ConfigError, from_dict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def leaf_keys(obj, prefix=""):
    """Every dotted key of a config object, e.g. 'dedup.threshold'."""
    keys = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            keys += leaf_keys(value, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def init_config(capsys) -> str:
    assert main(["init-config"]) == 0
    return capsys.readouterr().out


def test_init_config_parses_as_toml_and_round_trips(capsys, tmp_path):
    text = init_config(capsys)
    tomllib.loads(text)   # raises on invalid TOML
    path = tmp_path / "synthgate.toml"
    path.write_text(text)
    assert config_mod.load(path).to_dict() == Config().to_dict()
    assert config_mod.load(path).hash() == Config().hash()


def test_init_config_shows_and_documents_every_key(capsys):
    text = init_config(capsys)
    lines = text.splitlines()
    for key in leaf_keys(Config()):
        name = key.rpartition(".")[2]
        # Unset keys are shown commented out, so the user still sees they exist.
        at = [i for i, ln in enumerate(lines)
              if ln.startswith(f"{name} = ") or ln.startswith(f"# {name} = ")]
        assert at, f"{key} missing from init-config"
        assert lines[at[0] - 1].startswith("# ") and len(lines[at[0] - 1]) > 4, \
            f"{key} has no comment"


def test_an_edited_config_file_is_honoured(tmp_path):
    path = tmp_path / "gate.toml"
    path.write_text('max_synthetic_share = 0.3\nstages = ["dedup"]\n[dedup]\nthreshold = 0.9\n')
    config = config_mod.load(path)
    assert config.max_synthetic_share == 0.3
    assert config.stages == ["dedup"]
    assert config.dedup.threshold == 0.9
    assert config.hash() != Config().hash()


@pytest.mark.parametrize("data, fragment", [
    ({"bogus": 1}, "unknown key 'bogus'"),
    ({"dedup": {"treshold": 0.9}}, "unknown key 'dedup.treshold'"),
    ({"dedup": 3}, "'dedup' must be a table"),
    ({"max_synthetic_share": -0.1}, "'max_synthetic_share': -0.1 is below the minimum"),
    ({"max_synthetic_share": True}, "'max_synthetic_share'"),
    ({"dedup": {"exact": "yes"}}, "'dedup.exact': expected true or false"),
    ({"dedup": {"num_perm": 12.5}}, "'dedup.num_perm': expected an integer"),
    ({"format": "csv"}, "'format': 'csv' is not one of parquet, jsonl"),
    ({"ingest": {"min_words": -1}}, "'ingest.min_words': -1 is below the minimum 0"),
])
def test_bad_keys_and_values_name_the_key(data, fragment):
    with pytest.raises(ConfigError, match="gate.toml") as err:
        from_dict(data, where="gate.toml")
    assert fragment in str(err.value)


def test_flags_win_over_the_config_file(capsys, tmp_path):
    (tmp_path / "gate.toml").write_text("max_synthetic_share = 0.2\nseed = 5\n")
    real = tmp_path / "real.jsonl"
    real.write_text("".join(json.dumps({"text": f"real record {i} of words"}) + "\n"
                            for i in range(4)))
    code = main(["run", "--real", str(real), "--config", str(tmp_path / "gate.toml"),
                 "--max-synthetic-share", "0.4", "--stages", "dedup", "--quiet",
                 "--out", str(tmp_path / "out")])
    capsys.readouterr()
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["config"]["max_synthetic_share"] == 0.4   # the flag
    assert report["config"]["seed"] == 5                    # the file
    assert report["config"]["stages"] == ["dedup"]


def test_with_overrides_keeps_what_is_not_overridden():
    base = Config(max_synthetic_share=0.3)
    changed = base.with_overrides(**{"dedup.threshold": 0.7, "seed": None})
    assert changed.dedup.threshold == 0.7
    assert changed.max_synthetic_share == 0.3 and changed.seed == base.seed
    with pytest.raises(ConfigError, match="dedup.threshold"):
        base.with_overrides(**{"dedup.threshold": 7})
