"""--push-to-hub: an output folder uploaded as a Hugging Face dataset repository.

Only a passing gate is published (`--push-even-if-failed` overrides): a failed gate's training
set is still written locally, for people to read why, but it does not go where others would
train on it. What is uploaded is what the output's manifest lists (the training set, the
decisions, the reports and the dataset card README.md, whose YAML header the Hub reads), never
anything else in the folder.

Everything that can be checked before the run's work is checked first (`plan`): the repository
name, huggingface_hub, a token, offline mode. The embedding stage sets HF_HUB_OFFLINE for its
own model load (nothing may be fetched then); a user who set it is refused before the run, so
the upload itself runs online.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .readers import InputError

_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}\Z")


@dataclass(frozen=True)
class PushPlan:
    """What --push-to-hub will do, checked before the run."""

    repo_id: str
    token: str
    even_if_failed: bool


def should_push(passed: bool, even_if_failed: bool) -> bool:
    """A passing gate is pushed; a failing one only when asked to."""
    return bool(passed) or bool(even_if_failed)


def plan(repo_id: str, even_if_failed: bool = False, token: str | None = None) -> PushPlan:
    """Checks a push can happen (InputError, exit 2, before any work): OWNER/NAME, the
    huggingface_hub package, a token (HF_TOKEN, `hf auth login`, or `token`), not offline."""
    if not _REPO_ID.match(repo_id or "") or ".." in repo_id or repo_id.endswith(".git"):
        raise InputError(f"--push-to-hub: {repo_id!r} is not a dataset repository name "
                         f"(OWNER/NAME: letters, digits, '-', '_', '.')")
    from .sources import need, user_offline
    hub = need("huggingface_hub", "--push-to-hub")
    token = token or hub.get_token()
    if not token:
        raise InputError("--push-to-hub needs a Hugging Face token with write access: set "
                         "HF_TOKEN or run `hf auth login`")
    if user_offline(("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        raise InputError("--push-to-hub needs the network, but HF_HUB_OFFLINE is set; unset "
                         "it (the embedding model is still loaded offline)")
    return PushPlan(repo_id, token, even_if_failed)


def push(out: str | Path, push_plan: PushPlan) -> str | None:
    """Uploads the output folder `out` when its report's gate passed (or the plan says to
    push a failed one). Returns the commit URL, or None when the gate failed and nothing was
    pushed. An upload error is an OSError naming the repository; the local output stands."""
    from . import output

    out = Path(out)
    files = output.read_manifest(out)
    if files is None:
        raise InputError(f"{out}: not a synthgate output (no manifest); nothing to push")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    passed = bool(report["gate"]["passed"])
    if not should_push(passed, push_plan.even_if_failed):
        return None
    from huggingface_hub import HfApi

    from .sources import hub_mode

    config_hash = report.get("config", {}).get("hash", "?")
    message = (f"synthgate {report.get('synthgate_version', '?')}: gate "
               f"{'PASSED' if passed else 'FAILED'}, {report['output']['real']} real + "
               f"{report['output']['synthetic']} synthetic records, config {config_hash}")
    try:
        with hub_mode(online=True):   # the user's own offline setting was refused in plan()
            api = HfApi(token=push_plan.token)
            api.create_repo(push_plan.repo_id, repo_type="dataset", exist_ok=True)
            info = api.upload_folder(repo_id=push_plan.repo_id, repo_type="dataset",
                                     folder_path=str(out), allow_patterns=sorted(files),
                                     commit_message=message)
    except Exception as exc:   # network, auth, quota: the local output is complete anyway
        raise OSError(f"pushing to the Hub dataset {push_plan.repo_id} failed "
                      f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); the "
                      f"output in {out} is complete") from None
    return getattr(info, "commit_url", None) or f"https://huggingface.co/datasets/" \
                                                f"{push_plan.repo_id}"


def push_to_hub(out: str | Path, repo_id: str, *, token: str | None = None,
                even_if_failed: bool = False) -> str | None:
    """The Python API's push: an output folder written by `run(..., out=...)` uploaded as the
    dataset `repo_id` when its gate passed. Returns the commit URL, or None when the gate
    failed (and `even_if_failed` is off)."""
    return push(out, plan(repo_id, even_if_failed, token))
