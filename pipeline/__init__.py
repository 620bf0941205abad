"""synthgate: a quality-control gate for synthetic training data.

    from synthgate import run, Config
    result = run(real="real.jsonl", synthetic="synth.jsonl",
                 config=Config(max_synthetic_share=0.3))
    result.kept, result.decisions, result.report["gate"]["passed"]

`describe()` lists the pipeline's stages: what each reads, writes and rejects.
"""

import os as _os

# Offline mode as the user set it, before synthgate sets HF_HUB_OFFLINE for its own model loads
# (embed.py, encoders.py): hf: inputs and --push-to-hub follow the user's choice, not ours.
USER_HF_OFFLINE = {k: _os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                                                   "HF_DATASETS_OFFLINE")}

# The names below load on first use (PEP 562): `import synthgate.cli` stays light, so a ^C
# while the command starts is the command's own "interrupted", not a traceback.
_LAZY = {"Config": "config", "ConfigError": "config", "InputError": "readers",
         "Reason": "records", "RunResult": "runner", "__version__": "runner",
         "build_stages": "runner", "describe": "runner", "run": "runner",
         "push_to_hub": "hub"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'synthgate' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])

__all__ = ["run", "Config", "RunResult", "Reason", "InputError", "ConfigError", "describe",
           "build_stages", "push_to_hub", "__version__"]
