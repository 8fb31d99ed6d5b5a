"""The progress bar a run shows while the learner trains, and the rollout actors it restarts."""

from __future__ import annotations

from configs.schema import TrainConfig
from coordination.reports import StepMetrics
from driver.roles import Roles
from driver.session import stop_requested


def follow_progress(config: TrainConfig, roles: Roles, training: list, faults, tick=None, follow=None) -> None:
    """A progress bar with live metrics until the learner finishes. A rollout actor that dies is
    restarted where it left off; a role that fails otherwise fails the run. `tick(metrics)`, if
    given, is called about every second (the soak injects its faults there), and so is
    `follow()` (the experiment tracker takes the new metrics rows)."""
    import ray
    from tqdm import tqdm

    from supervisor.restarts import restart_actor

    total_steps = config.learner.total_steps
    with tqdm(total=None if tick else total_steps, desc="learner steps", unit="step", dynamic_ncols=True) as bar:
        while True:
            if stop_requested():
                raise KeyboardInterrupt
            done, _ = ray.wait(training + roles.runs, num_returns=1, timeout=1.0)
            if done and set(done) & set(training):
                ray.get(training)  # raises the learner's error if it failed
                if bar.total:
                    bar.update(bar.total - bar.n)
                return
            if done:
                index = roles.runs.index(done[0])
                try:
                    ray.get(done[0])
                except ray.exceptions.RayActorError as died:
                    restart_actor(config, roles, index, died, faults)
                    continue
                raise RuntimeError(f"rollout actor {index} stopped before the learner finished")
            metrics = roles.learners[0].latest_metrics()
            show_metrics(bar, metrics)
            if tick is not None:
                tick(metrics)
            if follow is not None:
                follow()


def show_metrics(bar, metrics: StepMetrics) -> None:
    if metrics.step >= 0:
        bar.update(metrics.step + 1 - bar.n)
        heldout = {"heldout": f"{metrics.heldout_accuracy:.3f}"} if metrics.heldout_accuracy is not None else {}
        bar.set_postfix(
            reward=f"{metrics.reward_mean:.3f}",
            version=metrics.policy_version,
            stale=f"{metrics.staleness_mean:.2f}",
            caps_s=f"{metrics.captions_per_s:.1f}",
            **heldout,
        )
