"""A stage of the main job, as its module declares it (what it runs, needs and reads; nothing executes here).

This module imports nothing of the library, so a stage's digest, which covers the code its module reaches,
does not change with the machinery that schedules and records stages (:mod:`npc_lib.graph`).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

# the stage a process works for while it runs one; the processes it starts (a pool's children, a notebook's
# kernel) inherit it, so what any of them does can be put down to the stage
STAGE_VARIABLE = "NPC_STAGE"


@dataclass(frozen=True)
class Stage:
    """One step of the main job.

    ``func(ctx, *args)`` does the work and returns the paths it wrote (files or folders, anywhere under the
    run folder or the project), or a dict with those paths under ``"writes"`` and anything else to keep in
    the record under ``"info"``. ``heavy`` stages (TensorFlow) run one at a time and get every core;
    ``isolated`` ones run in a child process of their own (what TensorFlow allocates goes with it).
    ``tolerant`` stages run even when a stage they need failed (the book shows the failure); ``local`` ones run
    in the runner's own process after the others (the book, which shows how they went). ``after`` names stages
    this one waits for without needing them (a schedule hint: their results do not enter its digest).
    """

    name: str
    func: Callable
    args: tuple = ()
    needs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    heavy: bool = False
    isolated: bool = False
    tolerant: bool = False
    local: bool = False
    extra: Callable | None = None   # extra(ctx, *args) -> str: more that the digest covers
    serves: str = ""                # the paper's item (or the book's page) the stage serves

    @property
    def module(self) -> str:
        return self.func.__module__

    @property
    def waits_for(self) -> tuple[str, ...]:
        """The stages it needs, then those it only waits for."""
        return (*self.needs, *(a for a in self.after if a not in self.needs))


@contextmanager
def working_for(name: str):
    """``STAGE_VARIABLE`` names the stage ``name`` while the block runs (its former value back after)."""
    before = os.environ.get(STAGE_VARIABLE)
    os.environ[STAGE_VARIABLE] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(STAGE_VARIABLE, None)
        else:
            os.environ[STAGE_VARIABLE] = before
