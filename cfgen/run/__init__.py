"""The run directory: what a stage reads and writes between processes and between runs.

    manifest.json            the plan: units, input fingerprints, settings per stage (manifest.py)
    .cfgen.lock              held while a stage writes (ledger.run_lock)
    <stage>/part-N.*         a unit's outputs, and part-N.stats.json, its done-marker (ledger.py)
    <stage>/failed.json      units that failed every retry, retried by the next run (ledger.py)

A stage plans or reads its units here, runs them with `run_units` (skip the done ones,
distribute the rest: distribute.py, distribute_ray.py) and gets back the stage's summary.
"""
from .distribute import WorkerBroken, is_fatal_device_error, is_oom, parse_gpus
from .ledger import Ledger, UnitStats, run_lock
from .manifest import Manifest, Unit, check_run_dir, plan_run, plan_units
from .runner import check_settings, run_units

__all__ = ["Ledger", "Manifest", "Unit", "UnitStats", "WorkerBroken", "check_run_dir", "check_settings",
           "is_fatal_device_error", "is_oom", "parse_gpus", "plan_run", "plan_units", "run_lock", "run_units"]
