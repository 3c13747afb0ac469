"""Where actors run: in the learner's process, one process each, or as Ray actors.

All three take the same :class:`~exphil_pipeline.rl.actor.ActorSpec`s and the same
:class:`~exphil_pipeline.rl.actor.RolloutRequest`s, and hand back
:class:`~exphil_pipeline.rl.actor.Rollout`s in the order they finish. ``overlaps`` says whether
actors play while the learner updates: then each actor holds a queue of requests, and the
learner adds one as soon as a chunk arrives (with the weights it has, a version or two behind
the update under way), and V-trace corrects for that lag; inline actors play only when asked,
after the update, so their chunks are on-policy.

A failed actor is an error of the run, raised with the actor's traceback: an actor holds only
simulated games, so nothing is gained by carrying on without it.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from exphil_pipeline.rl.actor import Actor, ActorSpec, Rollout, RolloutRequest

POLL_SECONDS = 1.0
CLOSE_SECONDS = 30.0
"""How long closing waits for actors to finish the chunks they were asked for."""
ACTOR_NICENESS = 19
"""Actor processes yield the cores to the learner, which every chunk waits for: on the 2-core
machine the demo's RL ran at about 16.5k frames/s with actors at the learner's priority, where
contention doubled the learner's update time, and at about 19.3k with them at nice 19."""


class ActorPool(Protocol):
    overlaps: bool

    def submit(self, actor: int, request: RolloutRequest) -> None:
        """Ask actor ``actor`` for one chunk."""
        ...

    def next(self) -> Rollout:
        """The next chunk any actor finished (blocks)."""
        ...

    def close(self) -> None: ...


class InlinePool:
    """Actors in the learner's process, run one request at a time when a chunk is wanted."""

    overlaps = False

    def __init__(self, specs: list[ActorSpec]) -> None:
        self._actors = [Actor(spec) for spec in specs]
        self._pending: deque[tuple[int, RolloutRequest]] = deque()

    def submit(self, actor: int, request: RolloutRequest) -> None:
        self._pending.append((actor, request))

    def next(self) -> Rollout:
        actor, request = self._pending.popleft()
        return self._actors[actor].handle(request)

    def close(self) -> None:
        self._pending.clear()


@dataclass(frozen=True)
class ActorFailure:
    actor: int
    traceback: str


def _serve(spec: ActorSpec, inbox: multiprocessing.Queue, outbox: multiprocessing.Queue) -> None:
    """An actor process: answer requests until told to stop (``None``)."""
    try:
        os.nice(ACTOR_NICENESS)
        actor = Actor(spec)
        while (request := inbox.get()) is not None:
            outbox.put(actor.handle(request))
    except BaseException:
        outbox.put(ActorFailure(spec.index, traceback.format_exc()))


class ProcessPool:
    """One spawned process per actor (spawn, not fork: the learner's torch threads must not be
    copied mid-flight into a child)."""

    overlaps = True

    def __init__(self, specs: list[ActorSpec]) -> None:
        context = multiprocessing.get_context("spawn")
        self._outbox = context.Queue()
        self._inboxes = [context.Queue() for _ in specs]
        self._processes = [
            context.Process(
                target=_serve, args=(spec, inbox, self._outbox), daemon=True, name=f"actor-{i}"
            )
            for i, (spec, inbox) in enumerate(zip(specs, self._inboxes, strict=True))
        ]
        for process in self._processes:
            process.start()

    def submit(self, actor: int, request: RolloutRequest) -> None:
        self._inboxes[actor].put(request)

    def next(self) -> Rollout:
        while True:
            try:
                item = self._outbox.get(timeout=POLL_SECONDS)
            except queue.Empty:
                dead = [p.name for p in self._processes if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"actor process {dead} died without a report") from None
                continue
            if isinstance(item, ActorFailure):
                raise RuntimeError(f"actor {item.actor} failed:\n{item.traceback}")
            return item

    def close(self) -> None:
        for inbox in self._inboxes:
            inbox.put(None)
        # Chunks still under way are drained unread: a process exits only once the chunks it
        # sent are out of its pipe.
        deadline = time.monotonic() + CLOSE_SECONDS
        while any(p.is_alive() for p in self._processes) and time.monotonic() < deadline:
            try:
                self._outbox.get(timeout=0.05)
            except queue.Empty:
                continue
        for process in self._processes:
            if process.is_alive():
                process.kill()
            process.join()


class RayPool:
    """Each actor a Ray actor with one CPU; joins a running Ray cluster (``RAY_ADDRESS``) or
    starts a local one sized to the actors."""

    overlaps = True

    def __init__(self, specs: list[ActorSpec]) -> None:
        try:
            import ray
        except ImportError:
            raise RuntimeError(
                "cluster 'ray' needs Ray: pip install 'exphil[cluster]', or use cluster 'local'"
            ) from None
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(num_cpus=max(len(specs), 1), include_dashboard=False, log_to_driver=False)
        remote = ray.remote(num_cpus=1)(Actor)
        self._actors = [remote.remote(spec) for spec in specs]
        self._in_flight: dict[object, int] = {}

    def submit(self, actor: int, request: RolloutRequest) -> None:
        self._in_flight[self._actors[actor].handle.remote(request)] = actor

    def next(self) -> Rollout:
        ready, _ = self._ray.wait(list(self._in_flight), num_returns=1)
        self._in_flight.pop(ready[0])
        try:
            return self._ray.get(ready[0])
        except self._ray.exceptions.RayError as error:
            raise RuntimeError(f"a Ray actor failed: {error}") from None

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        if self._started:
            self._ray.shutdown()


def actor_pool(cluster: str, specs: list[ActorSpec]) -> ActorPool:
    """The pool ``cluster`` names (``inline``, ``local`` or ``ray``)."""
    pools = {"inline": InlinePool, "local": ProcessPool, "ray": RayPool}
    if cluster not in pools:
        raise ValueError(f"cluster {cluster!r}: use one of {sorted(pools)}")
    return pools[cluster](specs)
