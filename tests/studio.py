"""A real ``genlab serve --port 0`` for the studio's tests: started in its own process on 127.0.0.1, stopped (and
waited for) when the test is done, whatever happens."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


class Studio:
    def __init__(self, root: Path) -> None:
        self.root = root
        env = os.environ | {"PYTHONUNBUFFERED": "1"}
        self.runs = root.parent / f"{root.name}-runs"
        argv = [sys.executable, "-m", "genlab", "serve", "--port", "0", "--no-browser", "--root", str(root),
                "--runs", str(self.runs), "--device", "cpu"]  # fmt: skip
        self.log = root.parent / f"{root.name}.log"  # a file, never a pipe nobody reads (it would fill and block)
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and self.proc.poll() is None:
            lines = [ln for ln in self.log.read_text().splitlines() if ln.startswith("genlab studio: http://")]
            if lines:
                line = lines[0]
                break
            time.sleep(0.1)
        if not line:
            self.stop()
            raise RuntimeError(f"genlab serve did not start: {self.log.read_text()!r}")
        self.url = line.split()[2]
        self.origin = self.url.rstrip("/")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
