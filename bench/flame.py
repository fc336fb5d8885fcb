"""Flame graphs for `make bench --flame`: py-spy records each process while a phase runs, one SVG per process.

py-spy attaches to a running process with ptrace. Where that is refused (a container without CAP_SYS_PTRACE,
Yama's kernel.yama.ptrace_scope above 1 for a non-root user, or 1 without being the target's ancestor) no
graph is written and the run goes on: the reason is in the results' notes.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

PTRACE_HELP = ("py-spy needs ptrace: run the bench as root, or allow it with `sudo sysctl kernel.yama.ptrace_scope=0`"
               " (in a container: `--cap-add SYS_PTRACE`)")


def py_spy() -> str | None:
    """The py-spy beside this interpreter (the venv's, from requirements-dev.txt), else the one on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def why_failed(output: str) -> str:
    """py-spy's own words, shortened, with what to do when the cause is ptrace being refused."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    said = next((line for line in lines if line.startswith("Error")), lines[-1] if lines else "no output")
    lowered = output.lower()
    refused = any(word in lowered for word in ("permission denied", "operation not permitted", "ptrace", "eperm"))
    return f"ptrace refused ({said}); {PTRACE_HELP}" if refused else said


class Flames:
    """`flames.start({name: pid, ...})`, then `flames.stop()` writes `<out_dir>/<name>.svg` each and
    returns what went wrong (one sentence per process; empty when every graph was written)."""

    def __init__(self, out_dir: Path, rate_hz: int = 100) -> None:
        self.out_dir, self.rate_hz = out_dir, rate_hz
        self.recording: dict[str, subprocess.Popen[bytes]] = {}
        self.problems: list[str] = []

    def start(self, pids: dict[str, int]) -> None:
        exe = py_spy()
        if exe is None:
            self.problems.append("flame graphs: py-spy is not installed (pip install -c constraints.txt -r "
                                 "requirements-dev.txt)")
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            # --nonblocking: the process is not paused at each sample, so its figures stay its own.
            command = [exe, "record", "--pid", str(pid), "--rate", str(self.rate_hz), "--nonblocking", "--format",
                       "flamegraph", "--output", str(self.out_dir / f"{name}.svg")]
            try:
                with open(self.out_dir / f"{name}.log", "wb") as log:
                    self.recording[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                            stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as exc:
                self.problems.append(f"no flame graph of {name}: py-spy did not start ({exc})")

    def stop(self) -> list[str]:
        for p in self.recording.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)  # py-spy writes its graph on SIGINT, as on Ctrl-C
        for name, p in self.recording.items():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            svg, log = self.out_dir / f"{name}.svg", self.out_dir / f"{name}.log"
            if svg.exists() and svg.stat().st_size > 0:
                log.unlink(missing_ok=True)
            else:
                said = log.read_text(errors="replace") if log.exists() else ""
                self.problems.append(f"no flame graph of {name}: {why_failed(said)} (py-spy's output: {log})")
        self.recording = {}
        return self.problems
