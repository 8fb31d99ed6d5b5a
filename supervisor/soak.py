"""`python launch.py soak out=PATH`: train for a fixed time while faults are injected, then prove
nothing accepted was lost.

At intervals (soak.*_every_s, staggered from soak.first_fault_s) it kills a rollout actor (Ray
restarts it; supervisor/restarts.py brings it back), kills a reasoner replica (Serve replaces
it; the actors' scoring retries carry the groups in flight), sends the replay queue garbage
(random bytes, a truncated group, a group of another schema version, a msgpack non-map, and a
frame past learner.replay.max_frame_bytes) and poison: a plausible group with one defect of each
class the queue refuses for its meaning (supervisor/poison.py), survived when the queue counts
each refused for that reason. Each fault is printed with its time. When the time is
up the learner finishes its step and the run ends as a normal one does; PATH/soak.json is the
run's summary with every fault injected and whether it was survived.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field

import msgpack
import ray
import zmq

from configs.commands import SoakConfig
from coordination.reports import StepMetrics
from supervisor.faults import FaultLog
from supervisor.poison import POISON_CLASSES, PoisonSpec, plausible_group, poison_group
from wire.metric_names import REPLAY_ACCEPTED
from wire.scored_group import SCHEMA_VERSION, encode_group

log = logging.getLogger(__name__)

REPLICA_PREFIX = "SERVE_REPLICA::"
POISON_POSITIONS = 10**15


@dataclass
class Schedule:
    """When each kind of fault is next due (seconds into the soak; None = never)."""

    config: SoakConfig
    due: dict[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Staggered, so that each fault's recovery is seen on its own.
        offsets = {"garbage": 0, "poison": 5, "actor_death": 10, "replica_death": 20}
        self.due = {kind: self.config.first_fault_s + offsets[kind] if self._every(kind) else None for kind in offsets}

    def _every(self, kind: str) -> float:
        return {
            "garbage": self.config.garbage_every_s,
            "poison": self.config.poison_every_s,
            "actor_death": self.config.actor_kill_every_s,
            "replica_death": self.config.replica_kill_every_s,
        }[kind]

    def take_due(self, now_s: float) -> list[str]:
        due = [kind for kind, at in self.due.items() if at is not None and at <= now_s]
        for kind in due:
            self.due[kind] += self._every(kind)
        return due


class FaultInjector:
    """Causes the faults, and checks the ones whose recovery the driver does not see itself."""

    def __init__(
        self, config: SoakConfig, roles, app_name: str, replay_endpoint: str, faults: FaultLog, poison: PoisonSpec
    ):
        self.schedule, self.roles, self.app_name, self.faults = Schedule(config), roles, app_name, faults
        self.replay_endpoint, self.poison = replay_endpoint, poison
        self.poisoned = 0  # poison groups sent (each gets a prompt position of its own)
        self.started = time.monotonic()
        self.kills = 0
        self.pending_replicas: dict[str, int] = {}  # killed replica -> replicas there were
        self.pending_oversized: int | None = None  # replay/accepted when the big frame went

    def tick(self, metrics: StepMetrics, injecting: bool) -> None:
        if injecting:
            for kind in self.schedule.take_due(time.monotonic() - self.started):
                getattr(self, f"_inject_{kind}")(metrics)
        self._check_recoveries(metrics)

    def settled(self) -> bool:
        """Every fault injected so far whose recovery is watched live has been recovered from
        (malformed frames are counted by the replay queue, and read from the summary)."""
        watched = ("actor_death", "replica_death", "oversized_frame")
        return all(self.faults.survived[kind] >= self.faults.injected[kind] for kind in watched)

    def _inject_actor_death(self, metrics: StepMetrics) -> None:
        index = self.kills % len(self.roles.actors)
        self.kills += 1
        self.faults.inject("actor_death", f"killed rollout actor {index}")
        ray.kill(self.roles.actors[index].actor, no_restart=False)  # as a crash: Ray restarts it

    def _inject_replica_death(self, metrics: StepMetrics) -> None:
        replicas = self._replicas()
        if not replicas:
            log.warning("no reasoner replica to kill")
            return
        victim = replicas[0]
        self.faults.inject("replica_death", f"killed {victim}")
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        self.pending_replicas[victim] = len(replicas)

    def _inject_garbage(self, metrics: StepMetrics) -> None:
        frames = garbage_frames()
        sender = zmq.Context.instance().socket(zmq.PUSH)
        sender.setsockopt(zmq.LINGER, 2000)
        sender.connect(self.replay_endpoint)
        for frame in frames:
            sender.send(frame)
        sender.close()
        self.faults.inject(
            "malformed_frame", f"{len(frames)} garbage frames sent to the replay queue", count=len(frames)
        )
        # Last, on a connection of its own: ZeroMQ drops the connection that sends it.
        big = zmq.Context.instance().socket(zmq.PUSH)
        big.setsockopt(zmq.LINGER, 2000)
        big.connect(self.replay_endpoint)
        big.send(os.urandom(1024) * (65 * 1024))  # 65 MiB, past the default max_frame_bytes
        big.close()
        self.faults.inject("oversized_frame", "a 65 MiB frame sent to the replay queue")
        self.pending_oversized = metrics.get(REPLAY_ACCEPTED, 0)

    def _inject_poison(self, metrics: StepMetrics) -> None:
        sender = zmq.Context.instance().socket(zmq.PUSH)
        sender.setsockopt(zmq.LINGER, 2000)
        sender.connect(self.replay_endpoint)
        for kind in POISON_CLASSES:
            # Positions far past any an actor reaches: a poison group could never pose as a duplicate.
            sender.send(encode_group(poison_group(self.poison, kind, POISON_POSITIONS + self.poisoned)))
            self.poisoned += 1
        sender.close()
        self.faults.inject(
            "poison_group",
            f"{len(POISON_CLASSES)} poison groups ({', '.join(POISON_CLASSES)}) sent to the replay queue",
            count=len(POISON_CLASSES),
        )

    def _replicas(self) -> list[str]:
        prefix = f"{REPLICA_PREFIX}{self.app_name}#"
        return sorted(
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == "serve" and a["name"].startswith(prefix)
        )

    def _check_recoveries(self, metrics: StepMetrics) -> None:
        for victim, count in list(self.pending_replicas.items()):
            now = self._replicas()
            if victim not in now and len(now) >= count:
                self.faults.survive("replica_death", f"{victim} replaced; the pool has {len(now)} replicas again")
                del self.pending_replicas[victim]
        # The queue still takes groups after the big frame: the learner lived through it.
        if self.pending_oversized is not None and metrics.get(REPLAY_ACCEPTED, 0) > self.pending_oversized:
            self.faults.survive("oversized_frame", "the replay queue refused it and still takes groups")
            self.pending_oversized = None


# Seconds a soak waits past its time for the recoveries of the last faults it injected.
SETTLE_S = 120.0


class SoakWatch:
    """The soak's part of a run: faults injected on the run's ticks, the learner stopped when
    the time is up and the last recoveries are seen, and soak.json written at the end."""

    def __init__(self, config: SoakConfig, app_name: str, poison: PoisonSpec):
        self.config, self.app_name, self.poison = config, app_name, poison
        self.stopping = False

    def start(self, roles, faults: FaultLog):
        """Called once the roles run; returns the tick the progress loop calls about every second."""
        self.roles, self.faults = roles, faults
        self.injector = FaultInjector(self.config, roles, self.app_name, roles.replay_endpoint, faults, self.poison)
        return self.tick

    def tick(self, metrics: StepMetrics) -> None:
        elapsed = time.monotonic() - self.faults.started
        self.injector.tick(metrics, injecting=elapsed < self.config.duration_s)
        settled = self.injector.settled() or elapsed > self.config.duration_s + SETTLE_S
        if not self.stopping and elapsed >= self.config.duration_s and settled:
            log.info("soak: %.0f s are up; the learner finishes its step", elapsed)
            self.roles.learners[0].stop_after_step_ref()
            self.stopping = True

    def finish(self, summary: dict, run_dir) -> None:
        report = soak_report(summary, self.config, time.monotonic() - self.faults.started)
        (run_dir / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
        log.info(
            "soak: %d faults injected, %d survived, %d groups lost, %d duplicated: %s",
            report["faults_injected"],
            report["faults_survived"],
            report["groups_lost"],
            report["groups_duplicated"],
            run_dir / "soak.json",
        )


def garbage_frames() -> list[bytes]:
    """Frames the replay queue must refuse, each for its own reason."""
    valid = encode_group(
        plausible_group(PoisonSpec(group_size=2, max_completion_tokens=3, prompt_id="soak-probe"), 0)
    )  # only ever sent broken
    other_schema = msgpack.unpackb(valid, raw=False)
    other_schema["schema"] = SCHEMA_VERSION + 1
    return [
        b"\xc1" * 256,  # not msgpack at all (0xc1 is a byte msgpack never uses)
        valid[: len(valid) // 2],  # cut short
        msgpack.packb(other_schema, use_bin_type=True),  # another schema version
        msgpack.packb([1, 2, 3]),  # msgpack, but not a map
    ]


def soak_report(summary: dict, config: SoakConfig, elapsed_s: float) -> dict:
    """soak.json: the run's summary, and each fault kind injected against survived."""
    injected = summary["faults_injected_by_kind"]
    survived = summary["faults_survived_by_kind"]
    return {
        "duration_s": round(elapsed_s, 1),
        "config": vars(config).copy(),
        "groups_lost": summary["groups_lost"],
        "groups_duplicated": summary["groups_duplicated"],
        "faults_injected": summary["faults_injected"],
        "faults_survived": sum(min(n, survived.get(kind, 0)) for kind, n in injected.items()),
        "faults_not_survived": {
            kind: n - survived.get(kind, 0) for kind, n in injected.items() if survived.get(kind, 0) < n
        },
        **{
            k: v
            for k, v in summary.items()
            if k not in ("groups_lost", "groups_duplicated", "faults_injected", "faults_survived")
        },
    }
