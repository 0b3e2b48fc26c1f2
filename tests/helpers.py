"""Importable helpers for tests that need picklable jobs (spawned worker processes)."""
import os
import time
from pathlib import Path

from cfgen.io.ledger import Ledger, UnitStats
from cfgen.io.writer import atomic_write_bytes


class SlowJob:
    """Writes `out/part-N.txt` after a pause; marks `started-N-<pid>` so a test can kill it mid-unit."""

    def __init__(self, run: str, pause: float = 0.5):
        self.run, self.pause = run, pause

    def setup(self, device):
        """No model to load."""

    def __call__(self, unit, device="cpu"):
        run = Path(self.run)
        (run / f"started-{unit.index}-{os.getpid()}").touch()
        time.sleep(self.pause)
        atomic_write_bytes(run / "out" / f"{unit.name}.txt", f"unit {unit.index}".encode())
        with open(run / "completions.log", "a") as f:
            f.write(f"{unit.index}\n")
        st = UnitStats(unit.index)
        st.add("kept")
        Ledger(run, "out").mark_done(unit, st)
        return st.to_dict()


class DieOnceJob(SlowJob):
    """Like SlowJob, but the process running unit `die_on` exits hard the first time."""

    def __init__(self, run: str, die_on: int, pause: float = 0.05):
        super().__init__(run, pause)
        self.die_on = die_on

    def __call__(self, unit, device="cpu"):
        marker = Path(self.run) / f"died-{unit.index}"
        if unit.index == self.die_on and not marker.exists():
            marker.touch()
            os._exit(137)
        return super().__call__(unit, device)
