"""Bring a dead rollout actor back into the run.

Ray restarts the actor's process (rollout.max_restarts); then, before it generates again:
- the admissions it held for groups that never reached the learner go back to the staleness
  gate (the learner says which of its prompt positions arrived; the gate knows what it held);
- it resumes its prompt stream at the first position that did not arrive and skips those that
  did, so its lost groups are regenerated from the same prompts and none is used twice;
- it takes the newest weights at once (the ZeroMQ publisher sends them to every new subscriber).
A broadcast weight sync (gloo, nccl) cannot take it back: the collective's members are fixed
when the group forms, so there a death ends the run with that reason.
"""

from __future__ import annotations

import logging
import time

import ray

from configs.schema import TrainConfig
from coordination.handles import RolloutHandle
from supervisor.faults import FaultLog

log = logging.getLogger(__name__)

# Seconds a restarted actor may take to come back (its engine loads the captioner again).
RESTART_TIMEOUT_S = 300.0


class ActorLost(RuntimeError):
    """A rollout actor died and cannot be brought back; the message says why."""


def restart_actor(config: TrainConfig, roles, index: int, died: Exception, faults: FaultLog) -> None:
    """Replace `roles.runs[index]` with the restarted actor's run, or raise ActorLost."""
    reason = (str(died).strip().splitlines() or [type(died).__name__])[0]
    backend = config.learner.weight_sync.backend
    if backend != "zmq":
        raise ActorLost(
            f"rollout actor {index} died ({reason}); learner.weight_sync.backend={backend} cannot take a restarted "
            "actor back: the broadcast group's members are fixed when it forms. Use backend=zmq to survive actor deaths"
        )
    actor, learner = roles.actors[index], roles.learners[0]
    try:
        wait_until_back(actor)
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as err:
        raise ActorLost(
            f"rollout actor {index} died ({reason}) and did not come back (rollout.max_restarts="
            f"{config.rollout.max_restarts} per actor): {type(err).__name__}: {err}"
        ) from err
    rejoin = learner.rejoin_point(index)
    lost = roles.gate.reclaim(index, len(rejoin.received))
    roles.runs[index] = actor.run_ref(rejoin.actor_start())
    faults.survive(
        "actor_death", f"actor {index}: {reason}; {lost} undelivered groups go back to the gate and are regenerated"
    )


def wait_until_back(actor: RolloutHandle) -> None:
    """Return once Ray has restarted `actor` (its calls fail as "unavailable" meanwhile); raises
    ActorDiedError when it will not come back, GetTimeoutError after RESTART_TIMEOUT_S."""
    deadline = time.monotonic() + RESTART_TIMEOUT_S
    while True:
        try:
            ray.get(actor.ready_ref(), timeout=max(1.0, deadline - time.monotonic()))
            return
        except ray.exceptions.ActorUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
