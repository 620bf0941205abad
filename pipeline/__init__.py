"""synthgate: a quality-control gate for synthetic training data.

    from synthgate import run, Config
    result = run(real="real.jsonl", synthetic="synth.jsonl",
                 config=Config(max_synthetic_share=0.3))
    result.kept, result.decisions, result.report["gate"]["passed"]

`describe()` lists the pipeline's stages: what each reads, writes and rejects.
"""

from .config import Config, ConfigError
from .ingest import InputError
from .records import Reason
from .runner import RunResult, __version__, build_stages, describe, run

__all__ = ["run", "Config", "RunResult", "Reason", "InputError", "ConfigError", "describe",
           "build_stages", "__version__"]
