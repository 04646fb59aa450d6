"""The studio's queue: one worker thread per device runs jobs in order; any job can be cancelled, queued or running;
jobs can be added while one runs. Every change is an event, fanned out to each open page's event stream.

A job's function is ``fn(job, emit)``: it calls ``emit(type, **data)`` for its progress (a streamed token, a preview,
a loss point) and ``job.check()`` between steps, which raises :class:`Cancelled` once the job is cancelled — so a
running job stops at its next step, on the server, not only in the page.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from genlab.errors import GenlabError

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
MAX_QUEUED = 64  # jobs waiting at once; more is refused (429)


class Cancelled(Exception):
    """Raised inside a job's function at its next step after the job was cancelled."""


@dataclass
class Job:
    id: str
    kind: str
    params: dict[str, Any]
    fn: Callable[[Job, Callable[..., None]], dict[str, Any]]
    state: str = QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled

    def public(self, position: int | None = None) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "state": self.state, "params": self.params, "result": self.result,
                "error": self.error, "position": position, "created": self.created, "started": self.started,
                "finished": self.finished}  # fmt: skip


class Queue:
    """Jobs in order, one at a time on a daemon thread; subscribers (asyncio queues of the event streams) receive
    every event as a dict."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = set()
        self._ids = itertools.count(1)
        self._stop = False
        self._thread = threading.Thread(target=self._work, name="genlab-worker", daemon=True)
        self._thread.start()

    # --- the event streams ------------------------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self._subscribers.add((asyncio.get_running_loop(), q))
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self._subscribers = {(loop, s) for loop, s in self._subscribers if s is not q}

    def publish(self, event: dict[str, Any]) -> None:
        for loop, q in list(self._subscribers):
            try:
                loop.call_soon_threadsafe(_offer, q, event)
            except RuntimeError:  # that page's loop has closed
                self._subscribers.discard((loop, q))

    # --- jobs ----------------------------------------------------------------------------------------------
    def submit(self, kind: str, params: dict[str, Any], fn: Callable) -> Job:
        with self._cond:
            if len(self._waiting) >= MAX_QUEUED:
                raise GenlabError(f"{len(self._waiting)} jobs are waiting already; cancel some or wait")
            job = Job(f"j{next(self._ids)}", kind, params, fn)
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._cond.notify()
        self._changed(job)
        return job

    def cancel(self, job_id: str) -> Job | None:
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None or job.state not in (QUEUED, RUNNING):
                return job
            job.cancel_event.set()
            if job.state == QUEUED:
                self._waiting.remove(job)
                job.state, job.finished = CANCELLED, time.time()
        self._changed(job)
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def listing(self) -> list[dict[str, Any]]:
        with self._cond:
            order = {j.id: i + 1 for i, j in enumerate(self._waiting)}
            jobs = sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)[:100]
            return [j.public(order.get(j.id)) for j in jobs]

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            for job in self._jobs.values():
                job.cancel_event.set()
            self._cond.notify_all()

    def _changed(self, job: Job) -> None:
        self.publish({"type": "job", "job": job.public()})
        with self._cond:
            for i, waiting in enumerate(self._waiting):
                if waiting is not job:
                    self.publish({"type": "position", "job": waiting.id, "position": i + 1})

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                job = self._waiting.popleft()
                job.state, job.started = RUNNING, time.time()
            self._changed(job)

            def emit(kind: str, job: Job = job, **data: Any) -> None:
                self.publish({"type": kind, "job": job.id, **data})

            try:
                job.check()
                job.result = job.fn(job, emit) or {}
                job.state = DONE
            except Cancelled:
                job.state = CANCELLED
            except GenlabError as e:
                job.state, job.error = FAILED, str(e)
            except Exception as e:  # a bug: the page says so, the server keeps serving
                job.state, job.error = FAILED, f"{type(e).__name__}: {e}"
                traceback.print_exc()
            job.finished = time.time()
            self._changed(job)


def _offer(q: asyncio.Queue, event: dict[str, Any]) -> None:
    if q.full():  # a page that stopped reading loses its oldest events, never blocks the worker
        q.get_nowait()
    q.put_nowait(event)
