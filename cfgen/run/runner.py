"""The unit runner every stage uses: skip done units, distribute the rest, record failures.

A job is an object with `setup(device)` (load its models once per worker and keep them as
attributes) and `__call__(unit, device)` (process one whole unit); see `distribute.Job`."""
from __future__ import annotations

import json
from typing import Any

from ..errors import redact
from .distribute import get_distributor
from .ledger import Ledger
from .manifest import Manifest, Unit


def check_settings(ledger: Ledger, settings: dict[str, Any], record: bool = True,
                   hint: str = "use a new run directory") -> None:
    """Refuse to go on with a stage whose finished parts were made with other values of the
    settings that shape them (a resume would mix them), naming each; with `record`, note them in
    the run's manifest.json (`settings.<stage>`). With no part finished, the new values stand."""
    if not Manifest.path(ledger.run_dir).exists():
        return
    manifest = Manifest.read(ledger.run_dir)
    settings = json.loads(json.dumps(settings))                 # as they read back from the manifest
    recorded = manifest.settings.get(ledger.stage)
    if recorded is not None and next(ledger.dir.glob("part-*.stats.json"), None) is not None:
        diff = [f"{k} {recorded[k]!r} (now {v!r})" for k, v in settings.items() if k in recorded and recorded[k] != v]
        if diff:
            raise ValueError(f"{ledger.run_dir}: its {ledger.stage} parts were made with {'; '.join(diff)}; "
                             f"rerun with those values, or {hint}")
    if record and recorded != settings:
        manifest.settings[ledger.stage] = settings
        manifest.write(ledger.run_dir)


def run_units(job: Any, units: list[Unit], ledger: Ledger, *, distributor: str = "local",
              workers: int = 1, gpus: list[str] | None = None, retries: int = 2, desc: str = "units",
              device: str = "cpu", item_key: str = "items", **dist_kw: Any) -> dict[str, Any]:
    """Process every unfinished unit; a rerun after a kill finishes the rest, redoing nothing done."""
    ledger.clean()
    todo = ledger.pending(units)
    failures = get_distributor(distributor)(job, todo, workers=workers, gpus=gpus, retries=retries,
                                            desc=desc, device=device, item_key=item_key, **dist_kw) if todo else {}
    by_index = {u.index: u for u in units}
    failed = {i: redact(e) for i, e in failures.items() if not ledger.is_done(by_index[i])}
    try:
        ledger.record_failures(failed)
    except OSError as e:          # a full disk must not hide the failures: they are still reported
        failed = {**failed, -1: f"could not write {ledger.dir}/failed.json: {e.strerror}"}
    summary = ledger.summary()
    summary["units_failed"] = {(f"part-{i:05d}" if i >= 0 else "failed.json"): e for i, e in sorted(failed.items())}
    return summary
