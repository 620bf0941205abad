"""synthgate: a quality-control gate for synthetic training data.

    from pipeline import run, Config
    result = run(real="real.jsonl", synthetic="synth.jsonl",
                 config=Config(max_synthetic_share=0.3))
    result.kept, result.decisions, result.report["gate"]["passed"]
"""

from .config import Config, ConfigError
from .ingest import InputError
from .records import Reason
from .runner import RunResult, __version__, run

__all__ = ["run", "Config", "RunResult", "Reason", "InputError", "ConfigError", "__version__"]
