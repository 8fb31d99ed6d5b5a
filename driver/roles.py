"""A job's roles wired together: the staleness gate, the learner ranks, the reasoner pool (with
the captioner service where one is needed), the rollout actors and the evaluator; and their stop."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from configs.schema import TrainConfig
from configs.seeds import derived_seed
from coordination.handles import EvaluatorHandle, GateHandle, LearnerHandle, PoolHandle, RolloutHandle
from driver.inputs import Inputs
from driver.session import worker_env

log = logging.getLogger("launch")
# Seconds a stopping run gives its roles to stop gracefully (Ctrl-C, the end of training).
STOP_TIMEOUT_S = 30.0


@dataclass
class Roles:
    """Handles of a running job's Ray actors."""

    gate: GateHandle
    learners: list[LearnerHandle]  # by rank; rank 0 reports
    actors: list[RolloutHandle]  # by actor id
    runs: list  # the actors' run() calls, ObjectRefs (replaced when an actor is restarted)
    replay_endpoint: str
    evaluator: EvaluatorHandle | None = None  # evaluation while training (eval.every_steps), if on

    def ray_actors(self) -> list:
        """Every role's Ray actor handle (to kill them)."""
        handles = [*self.actors, *self.learners, self.gate, *([self.evaluator] if self.evaluator else [])]
        return [handle.actor for handle in handles]


def start_roles(config: TrainConfig, inputs: Inputs, run_dir: Path) -> Roles:
    """Gate, learner ranks, reasoner pool and rollout actors, wired together; actors start generating
    (a resumed run's from where its checkpoint left them)."""
    from actors.start import start_rollout_actors
    from coordination.handles import start_gate
    from learner.admission import run_bounds
    from learner.start import start_learner
    from records.vqa import read_records
    from serve.pool import ReasonerPool
    from supervisor.placement import check_placement, record_placement, role_demands, serve_replicas, wait_started

    role = config.policy.role
    policy = inputs.policy(role)
    # One spec for the actors that sample and the learner that recomputes their logprobs.
    sampling = policy_sampling_spec(config, role, policy)
    pinned = check_placement(config)
    demands = {d.role: d for d in role_demands(config)}
    timeout_s = config.ray.start_timeout_s
    gate = start_gate(config.learner)
    evaluation = start_evaluation(config, inputs, sampling)
    learner = start_learner(
        config.learner,
        policy,
        str(run_dir),
        sampling,
        config.rollout.num_actors,
        gate,
        worker_env(),
        config.seed,
        resume=bool(config.resume),
        curve_keys_dir=config.curve.keys_dir,
        nodes=pinned.get("learner rank", ()),
        role=role,
        bounds=run_bounds(config, (record.id for record in read_records(Path(inputs.train_file)))),
        evaluation=evaluation,
    )
    wait_started(demands["learner rank"], [rank.actor for rank in learner.ranks], timeout_s)
    # While the learner sets up. With serve.live the pool also serves people, two-stage model included.
    start_live_pool(config, inputs, http=config.serve.live, captioner=config.serve.live)
    learners, ready = learner.ready()
    actors = start_rollout_actors(
        config.rollout,
        policy,
        sampling,
        inputs.train_file,
        (ready.replay_endpoint,),
        ready.weight_source,
        config.serve.app_name,
        gate,
        worker_env(),
        config.seed,
        config.curve.keys_dir,
        nodes=pinned.get("rollout actor", ()),
        role=role,
    )
    wait_started(demands["rollout actor"], [actor.actor for actor in actors], timeout_s)
    replicas = serve_replicas(config.serve.app_name, ReasonerPool.name)
    record_placement(
        run_dir / "placement.json", [rank.actor for rank in learners], replicas, [actor.actor for actor in actors]
    )
    starts = [None] * len(actors)
    if (resumed := ready.resumed) is not None:
        gate.restore(resumed.gate, resumed.gate_held())
        starts = [resumed.actor_start(i) for i in range(len(actors))]
        log.info("resuming at step %d (policy version %d)", resumed.steps_done, resumed.policy_version)
    runs = [a.run_ref(s) for a, s in zip(actors, starts)]
    evaluator = evaluation.evaluator if evaluation is not None else None
    return Roles(
        gate=gate,
        learners=learners,
        actors=actors,
        runs=runs,
        replay_endpoint=ready.replay_endpoint,
        evaluator=evaluator,
    )


def start_evaluation(config: TrainConfig, inputs: Inputs, sampling):
    """The evaluator of eval.every_steps (its engines build while the learner starts), or None."""
    from coordination.handles import EvalSchedule
    from evaluation.during_training import start_training_evaluator

    if not config.eval.every_steps:
        return None
    if config.policy.role != "captioner":
        log.info(
            "eval.every_steps: evaluation while training covers a captioner policy; this run trains the %s",
            config.policy.role,
        )
        return None
    if not inputs.eval_file:
        log.info("eval.every_steps: no held-out split (task.eval_file) to evaluate on while training")
        return None
    evaluator = start_training_evaluator(config, inputs.captioner, inputs.reasoner, inputs.eval_file, sampling)
    return EvalSchedule(evaluator, config.eval.every_steps)


def policy_sampling_spec(config: TrainConfig, role: str, policy: str):
    """How the policy samples (rollout.sampling, the policy's special tokens suppressed)."""
    from learner.policy_model import load_policy_processor
    from vlm.sampling import caption_sampling_spec

    _, tokenizer = load_policy_processor(role, policy)
    return caption_sampling_spec(config.rollout.sampling, tokenizer)


def stop_roles(roles: Roles | None, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop the actors (they finish scoring what they generated), close their engines and the
    learner, stop the reasoner pool, and free their resources (GPUs included) for what comes next.
    Prompt under load: the graceful part has `timeout_s` in all, then whatever is left is killed."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        return
    started = time.monotonic()
    if roles is not None:

        def left() -> float:
            return max(1.0, timeout_s - (time.monotonic() - started))

        try:
            ray.get([a.stop_ref() for a in roles.actors], timeout=left())
            ray.get(roles.runs, timeout=left())
            ray.get([a.close_ref() for a in roles.actors], timeout=left())  # vLLM engine processes
            ray.get([rank.close_ref() for rank in roles.learners], timeout=left())
            if roles.evaluator is not None:
                ray.get(roles.evaluator.close_ref(), timeout=left())
        except Exception as err:  # a role that died or did not stop in time: killed below
            log.warning("stopping roles: %s: %s", type(err).__name__, err)
        for actor in roles.ray_actors():
            ray.kill(actor)
    serve.shutdown()
    log.info("roles stopped in %.1f s", time.monotonic() - started)


def start_live_pool(config: TrainConfig, inputs: Inputs, http: bool, captioner: bool) -> PoolHandle:
    """The reasoner pool; with `captioner`, the captioner service behind its two-stage model
    (serve.api.captioner, else the run's captioner). A run training the reasoner always has the
    service: the frozen captioner writes the policy's prompts (the run's captioner, always)."""
    from actors.caption_service import caption_service_app
    from serve.pool import start_reasoner_pool

    service = None
    if config.policy.role == "reasoner":
        service = caption_service_app(config.rollout, inputs.captioner, derived_seed(config.seed, "caption-service"))
    elif captioner and config.serve.api.two_stage_model:
        checkpoint = config.serve.api.captioner or inputs.captioner
        service = caption_service_app(config.rollout, checkpoint, derived_seed(config.seed, "caption-service"))
    return start_reasoner_pool(
        config.serve, inputs.reasoner, config.seed, http=http, captioner=service, reward=config.reward
    )
