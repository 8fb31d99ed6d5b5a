"""Start an asynchronous caption-reward RL run, or the reasoner pool alone.

    python launch.py [train] [--config FILE] [key=value ...]   # the main job (default)
    python launch.py resume=RUN_DIR [key=value ...]            # continue a run from its latest checkpoint
    python launch.py alternate [key=value ...]                 # train the roles in turn (policy.stages)
    python launch.py serve   [--config FILE] [key=value ...]   # the reasoner pool as a live service
    python launch.py infer   --image PATH --question TEXT      # two-stage inference of one image
    python launch.py eval    --run DIR | --checkpoint DIR      # held-out accuracy before/after
    python launch.py eval    data=PATH out=DIR                 # a benchmark in the paper's three modes
    python launch.py check-data FILE                           # a data file's unusable rows, with why
    python launch.py build   [key=value ...]                   # rebuild the bundled task
    python launch.py bench   out=PATH [key=value ...]          # async vs sync throughput (BENCHMARKS.md)
    python launch.py soak    out=PATH [key=value ...]          # train under injected faults (soak.json)
    python launch.py keys    out=DIR                           # ZeroMQ CURVE key pairs (curve.keys_dir=DIR)

A run: start Ray, the staleness gate, the learner, the reasoner pool and the rollout actors;
show progress until the learner has done its steps, restarting rollout actors that die; stop
everything, also on Ctrl-C; write the run's account of its groups (summary.json); then evaluate
the initial and trained captioner on held-out prompts and plot the reward.

The commands live in the `driver` package (driver/commands, one module each); this file is only
the entry point.
"""

import sys

from driver.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
