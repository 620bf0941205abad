"""The command line: parses, calls synthgate.run(), maps the outcome to an exit status.

0 the gate passed, 1 the gate failed (outputs written), 2 usage error or unusable input
(one message naming file, line/row and field; nothing written), 3 an internal error (a bug:
one line names the log file that holds the traceback; nothing written), 130 interrupted.
Scripts read 1 as "the gate failed and the outputs are there", so nothing else may end as 1.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import re
import sys
import tempfile
import traceback

# Only the standard library at import time: the package's own modules (numpy, pandas...)
# are imported inside main(), where a ^C is an "interrupted" line and exit 130, not
# Python's traceback.


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def _template(value: str) -> str:
    r"""Shell users write "{instruction}\n\n{response}": turn \n, \t, \r and \\ into the
    characters. Only those: a general unescape would garble non-ASCII text ("Réponse")."""
    return re.sub(r"\\([ntr\\])", lambda m: _ESCAPES[m.group(1)], value)


def _share(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0.0 <= x <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1")
    return x


def _tolerance(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not math.isfinite(x) or x < 0:
        raise argparse.ArgumentTypeError(f"{value} is not a finite number >= 0")
    return x


def _stages(value: str) -> list[str]:
    from . import config as config_mod
    names = [s.strip() for s in value.split(",") if s.strip()]
    bad = [s for s in names if s not in config_mod.STAGES]
    if bad or not names:
        problem = f"unknown stage {bad[0]!r}" if bad else "no stage given"
        raise argparse.ArgumentTypeError(
            f"{problem} (choose from {', '.join(config_mod.STAGES)})")
    return names


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit 2), like every other
    error synthgate reports; --help still shows the full usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import config as config_mod
    parser = _Parser(
        prog="synthgate",
        description="Quality-control gate for synthetic training data.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="gate real + synthetic records and write the outputs")
    run.add_argument("--real", nargs="+", metavar="PATH", help="real (human) records")
    run.add_argument("--synthetic", nargs="+", metavar="PATH", help="synthetic records")
    run.add_argument("--input", nargs="+", metavar="PATH",
                     help="mixed records; --source-field says which are real")
    run.add_argument("--source-field", metavar="FIELD")
    run.add_argument("--out", required=True, metavar="DIR")
    run.add_argument("--config", metavar="FILE", help="TOML config (synthgate init-config)")
    run.add_argument("--text-field", metavar="NAME")
    run.add_argument("--text-template", metavar="TEMPLATE", type=_template)
    run.add_argument("--id-field", metavar="NAME")
    run.add_argument("--max-synthetic-share", type=_share, metavar="X")
    run.add_argument("--max-share-per-generation", type=_share, metavar="X")
    run.add_argument("--model", metavar="NAME_OR_PATH", help="sentence-transformers model")
    run.add_argument("--stages", type=_stages, metavar="LIST",
                     help=f"comma-separated subset of {','.join(config_mod.STAGES)}")
    run.add_argument("--format", choices=("parquet", "jsonl", "hf"),
                     help="training set: train.parquet (default), train.jsonl, or hf (a "
                          "datasets save_to_disk folder train/; needs synthgate[hf])")
    run.add_argument("--split", metavar="NAME",
                     help="split to read from an input holding several (a DatasetDict "
                          "save_to_disk folder, hf:NAME without @SPLIT)")
    run.add_argument("--push-to-hub", metavar="OWNER/NAME",
                     help="upload the output folder as a Hugging Face dataset after a "
                          "passing gate (needs a token: HF_TOKEN or `hf auth login`)")
    run.add_argument("--push-even-if-failed", action="store_true",
                     help="with --push-to-hub: upload even when the gate fails")
    run.add_argument("--seed", type=int)
    run.add_argument("--quiet", action="store_true", help="no progress display")
    run.add_argument("--engine", choices=("local", "ray"),
                     help="local (default) or ray: the same stages on Ray Data")
    run.add_argument("--ray-address", metavar="ADDRESS",
                     help="with --engine ray: the Ray cluster to join (default: RAY_ADDRESS, "
                          "else a local Ray instance)")
    # --- issue 11: benchmark decontamination
    run.add_argument("--benchmark", nargs="+", action="extend", metavar="PATH",
                     help="evaluation sets (JSONL/JSON/CSV/Parquet, directories, globs): "
                          "records carrying one of their items are rejected")
    run.add_argument("--benchmark-text-template", metavar="TEMPLATE", type=_template,
                     help='build a benchmark item\'s text, e.g. "{question}\\n{answer}"')

    sub.add_parser("init-config", help="print the default config (TOML) with comments")

    stages = sub.add_parser("stages", help="the pipeline: each stage in order, what it reads, "
                                           "writes and which reason codes it gives")
    stages.add_argument("--json", action="store_true", help="as JSON (describe())")

    compare = sub.add_parser("compare", help="how metrics moved between two runs")
    compare.add_argument("run_a", metavar="RUN_DIR_A")
    compare.add_argument("run_b", metavar="RUN_DIR_B")
    compare.add_argument("--tolerance", type=_tolerance, default=None,
                         help="largest tolerated relative fall of a tracked metric")
    return parser


EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130   # 128 + SIGINT, what a shell reports for ^C

# Dotted config key -> the flag that sets it, so a bad flag value names the flag.
FLAGS = {"text_field": "--text-field", "text_template": "--text-template",
         "id_field": "--id-field", "source_field": "--source-field",
         "max_synthetic_share": "--max-synthetic-share", "stages": "--stages",
         "format": "--format", "split": "--split", "seed": "--seed",
         "embed.model": "--model",
         "mix.max_share_per_generation": "--max-share-per-generation",
         "benchmark.paths": "--benchmark",
         "benchmark.text_template": "--benchmark-text-template",
         "engine.name": "--engine", "engine.ray_address": "--ray-address"}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error(message: str, code: int = 2) -> int:
    print(f"synthgate: error: {_one_line(message)}", file=sys.stderr)
    return code


def _internal_error(exc: BaseException) -> int:
    """A bug, not bad input: the traceback goes to a log file, one line says where."""
    try:
        fd, log = tempfile.mkstemp(prefix="synthgate-crash-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(f"synthgate internal error, {datetime.datetime.now().isoformat()}\n"
                     f"argv: {sys.argv!r}\n\n")
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=fh)
        where = f"the traceback is in {log}"
    except OSError as log_exc:   # no writable temp dir: still one line, still exit 3
        where = f"no log written ({log_exc.strerror or log_exc})"
    return _error(f"internal error ({type(exc).__name__}: {exc}); {where}; no output "
                  f"written; please report it", EXIT_INTERNAL)


def _run(args: argparse.Namespace) -> int:
    from .runner import run
    from .stage import Progress

    if not (args.real or args.synthetic or args.input):
        return _error("give --real and --synthetic, or --input with --source-field")
    if args.input and (args.real or args.synthetic):
        return _error("--input cannot be combined with --real/--synthetic")
    if args.source_field and not args.input:
        return _error("--source-field applies to --input only (with --real/--synthetic the "
                      "source is known)")
    if args.push_even_if_failed and not args.push_to_hub:
        return _error("--push-even-if-failed applies to --push-to-hub only")
    from . import config as config_mod
    from .config import Config, ConfigError

    push_plan = None
    if args.push_to_hub:   # name, package, token, offline: checked before minutes of work
        from . import hub
        push_plan = hub.plan(args.push_to_hub, args.push_even_if_failed)
    config = config_mod.load(args.config) if args.config else Config()
    overrides = {
        "text_field": args.text_field, "text_template": args.text_template,
        "id_field": args.id_field, "source_field": args.source_field,
        "max_synthetic_share": args.max_synthetic_share, "stages": args.stages,
        "format": args.format, "split": args.split, "seed": args.seed,
        "embed.model": args.model,
        "mix.max_share_per_generation": args.max_share_per_generation,
        "benchmark.paths": args.benchmark,
        "benchmark.text_template": args.benchmark_text_template,
        "engine.name": args.engine, "engine.ray_address": args.ray_address}
    try:   # flags go through the same validation as the config file
        config = config.with_overrides(**overrides)
    except ConfigError as exc:
        key = (exc.key or "").split("[")[0]
        if overrides.get(key) is None:
            raise
        raise ConfigError(f"{FLAGS[key]}: {str(exc).split(': ', 2)[-1]}", key=key) from None
    progress = Progress(False if args.quiet else None)
    result = run(real=args.real, synthetic=args.synthetic, input=args.input, config=config,
                 out=args.out, progress=progress)
    from .report import summary
    try:
        print(summary(result.report))
        print(f"  outputs in {args.out}", flush=True)
    except BrokenPipeError:
        # `synthgate run ... | head` closed the pipe: the outputs are written and the verdict
        # stands; only the summary was cut short.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if push_plan is not None:
        from . import hub
        url = hub.push(args.out, push_plan)   # an upload error: OSError, exit 2, output kept
        print(f"  pushed to the Hub: {url}" if url else
              f"  not pushed to {push_plan.repo_id}: the gate failed "
              f"(--push-even-if-failed pushes anyway)", flush=True)
    return 0 if result.passed else 1


def _stages_text(as_json: bool) -> str:
    """`synthgate stages`: the default pipeline, one block per stage."""
    from .runner import describe

    stages = describe()
    if as_json:
        import json
        return json.dumps(stages, indent=2)
    import textwrap

    lines = []
    for i, stage in enumerate(stages, 1):
        lines += textwrap.wrap(f"{i}. {stage['name']}: {stage['what']}", 88,
                               subsequent_indent="   ")
        for key in ("reads", "writes", "reasons"):
            lines += textwrap.wrap(f"{key:8} {', '.join(stage[key]) or '-'}", 88,
                                   initial_indent="   ", subsequent_indent=" " * 12)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt as exc:   # also while the package's modules are imported
        return _error(f"interrupted; {str(exc) or 'no output written'}", EXIT_INTERRUPTED)


def _main(argv: list[str] | None) -> int:
    from . import config as config_mod
    from .config import ConfigError
    from .readers import InputError

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:   # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        if args.command == "init-config":
            print(config_mod.default_toml())
            return 0
        if args.command == "stages":
            print(_stages_text(args.json))
            return 0
        if args.command == "compare":
            from .compare import compare
            return compare(args.run_a, args.run_b, tolerance=args.tolerance)
        return _run(args)
    except (InputError, ConfigError) as exc:
        return _error(str(exc))
    except KeyboardInterrupt as exc:
        return _error(f"interrupted; {str(exc) or 'no output written'}", EXIT_INTERRUPTED)
    except OSError as exc:   # e.g. --out on a read-only disk: a message, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        return _error(f"{where}{exc.strerror or exc}")
    except Exception as exc:   # a bug: never exit 1, which means "gate failed"
        return _internal_error(exc)


def console_main() -> int:
    """The `synthgate` command: main(), then a ^C that lands after the run is over (while
    the interpreter shuts down) is ignored: the outputs are complete and the status stands."""
    import signal
    code = None
    try:
        code = main()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except KeyboardInterrupt:
        # The ^C landed between the end of main() and the line above (CI saw it once): the
        # run is over and its status stands; if the ^C took the status with it, the exit
        # says interrupted.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if code is None:
            code = _error("interrupted", EXIT_INTERRUPTED)
    if code == EXIT_INTERRUPTED:
        # A ^C that lands inside an extension module's import marks the interpreter, which
        # would then end itself by SIGINT at shutdown instead of exiting 130; the run is
        # over and said so, so leave now with the status.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(console_main())
