"""The run's account of its caption groups, printed and written to RUN_DIR/summary.json.

Groups are counted where they can be checked: the actors count what they generated, the
staleness gate what it admitted and took back, the learner what it accepted, took and dropped.
`groups_lost` (accepted but neither used, dropped nor waiting) and `groups_duplicated` (a prompt
position used twice) are the two that must be 0.
"""

from __future__ import annotations

import json
from pathlib import Path

from coordination.gate import GateStats
from coordination.reports import GroupAccount
from supervisor.faults import FaultLog
from supervisor.poison import POISON_CLASSES


def run_summary(accounting: GroupAccount, gate: GateStats, faults: FaultLog) -> dict:
    """The summary of a run (summary.json's keys) from the learner's `accounting()`, the gate's
    stats and the fault log."""
    actor_total = accounting.actor_total
    survived = dict(faults.survived)
    # Frames that did not decode, against well-formed groups refused for what they meant: those
    # are poison survived only where a soak sent poison, each class up to what it sent of that class.
    by_reason = accounting.frames_rejected_by_reason
    malformed = by_reason.get("malformed", 0) + by_reason.get("error", 0) if by_reason else accounting.frames_rejected
    per_class = faults.injected.get("poison_group", 0) // len(POISON_CLASSES)
    poison = sum(min(by_reason.get(kind, 0), per_class) for kind in POISON_CLASSES)
    # Faults the roles absorbed themselves, counted where they happened.
    for kind, count in (
        ("scoring_retry", actor_total("score_failures")),
        ("costly_answer", actor_total("answers_refused")),
        ("empty_caption", actor_total("empty_captions")),
        ("judge_unparsed", actor_total("judge_unparsed")),
        ("format_timeout", actor_total("format_timeouts")),
        ("malformed_frame", malformed),
        ("poison_group", poison),
        ("duplicate_group", accounting.groups_dropped["duplicate"]),
        ("unreadable_record", actor_total("bad_records")),
        ("malformed_weight_update", actor_total("weight_updates_rejected")),
    ):
        if count:
            survived[kind] = survived.get(kind, 0) + count
    return {
        "steps": accounting.steps,
        "policy_version": accounting.policy_version,
        "groups_generated": actor_total("groups_generated"),
        "groups_admitted": gate.admitted + gate.given_back,
        "groups_accepted": accounting.groups_accepted,
        "groups_consumed": accounting.groups_consumed,
        "groups_dropped": {
            **accounting.groups_dropped,
            # Generated but never delivered; their prompts were generated again.
            "scoring_failed": actor_total("groups_lost"),
            "lost_with_dead_actor": gate.reclaimed,
        },
        "groups_buffered_at_end": accounting.groups_buffered_at_end,
        "groups_lost": accounting.groups_lost,
        "groups_duplicated": accounting.groups_duplicated,
        # Frames the replay queue refused, by reason (learner/admission.py): outside a soak, any
        # other than "malformed" means a sender out of step with the run (docs/troubleshooting.md).
        "frames_rejected_by_reason": dict(by_reason),
        "faults_injected": sum(faults.injected.values()),
        "faults_injected_by_kind": dict(faults.injected),
        "faults_survived": sum(survived.values()),
        "faults_survived_by_kind": survived,
        "fault_events": faults.events,
    }


def write_summary(summary: dict, path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2) + "\n")


def summary_lines(summary: dict) -> list[str]:
    """The summary as a few lines for the console."""
    dropped = ", ".join(f"{k} {v}" for k, v in summary["groups_dropped"].items() if v) or "none"
    faults = ", ".join(f"{k} {v}" for k, v in summary["faults_survived_by_kind"].items()) or "none"
    groups = (
        f"groups: {summary['groups_generated']} generated, {summary['groups_accepted']} accepted, "
        f"{summary['groups_consumed']} trained on, {summary['groups_buffered_at_end']} still queued"
    )
    return [
        groups,
        f"dropped: {dropped}",
        f"lost: {summary['groups_lost']}, used twice: {summary['groups_duplicated']}",
        f"faults survived: {faults}",
    ]
