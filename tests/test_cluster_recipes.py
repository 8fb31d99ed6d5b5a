"""The cluster recipes in examples/ (docs/multi-node.md): a KubeRay RayJob and a Slurm batch
script. Neither can run here (no Kubernetes, no Slurm, no GPUs). What is checked is what a
reader would otherwise find out on the cluster:

- every `launch.py` command they run exists and takes the flags given (the CLI's own parser),
  every `--config` file is in this checkout, and every key=value names a real config key with a
  valid value (the config loader);
- the placement keys name only labels and custom resources that some node of the recipe's
  cluster carries, and the driver's own planner (supervisor/placement.py) places every role on
  the nodes the recipe defines, their CPUs and GPUs included;
- every socket beyond loopback is protected (configs/exposure.py) and the CURVE keys are where
  the command says on every node;
- no secret is written literally: the token comes from a Secret or from the environment.
- the batch script, run under stand-ins for srun, scontrol, ray and python, starts every node
  with its role's flags, runs the driver once, stops Ray when it ends, and without a token
  starts nothing.

Each check also runs on a hand-made bad example, to show it can fail.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from configs.exposure import exposure
from configs.load import ConfigError, load_config
from configs.schema import TrainConfig
from driver.cli import command_parser
from driver.commands import COMMANDS
from supervisor.placement import ClusterNode, PlacementError, plan_placement, role_demands

ROOT = Path(__file__).resolve().parents[1]
RAYJOB = ROOT / "examples" / "kuberay" / "rayjob-paper-3b.yaml"
SBATCH = ROOT / "examples" / "slurm" / "train-paper-3b.sbatch"
SHELL_VARIABLE = re.compile(r"[$][{]?(\w+)[}]?")
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY", re.IGNORECASE)


# --- the commands ----------------------------------------------------------------------------


def launch_commands(script: str) -> list[list[str]]:
    """The words after `python launch.py` of every command in a shell script (comments skipped,
    continued lines joined, `cd DIR && ...` split off)."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        if line.lstrip().startswith("#") or "launch.py" not in line:
            continue
        for part in re.split(r"&&|;|\|\|", line):
            words = shlex.split(part)
            at = [i for i, w in enumerate(words) if w.endswith("launch.py")]
            if at and words[at[0] - 1].startswith("python"):
                commands.append(words[at[0] + 1 :])
    return commands


def shell_values(override: str) -> str:
    """`key="$DIR/x"` as a value the loader can check: each shell variable becomes a path
    component (string keys only: a typed key must be given literally)."""
    key, value = override.split("=", 1)
    return key + "=" + SHELL_VARIABLE.sub(lambda m: "/" + m.group(1).lower(), value)


def load_command(argv: list[str]) -> TrainConfig:
    """The config of a `launch.py` command, loaded as `launch.py` loads it; ConfigError or
    SystemExit (a usage error) otherwise."""
    if not argv or argv[0] not in COMMANDS:
        raise ConfigError(f"not a launch.py command: {argv[:1]} (commands: {', '.join(COMMANDS)})")
    args = command_parser(argv[0]).parse_intermixed_args(argv[1:])
    config_file = getattr(args, "config", None)
    if config_file is not None and (Path(config_file).is_absolute() or not (ROOT / config_file).is_file()):
        raise ConfigError(f"--config {config_file} is not a file of this checkout")
    overrides = [shell_values(o) for o in getattr(args, "overrides", [])]
    return load_config(ROOT / config_file if config_file else None, overrides)


# --- the clusters ----------------------------------------------------------------------------


def quantity(text) -> float:
    """A Kubernetes CPU or GPU quantity: 24, "24", "500m"."""
    text = str(text)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def ray_labels(text: str) -> dict[str, str]:
    """`ray start --labels=k=v,k2=v2`."""
    return dict(pair.split("=", 1) for pair in text.split(",") if pair)


def ray_resources(text: str) -> dict[str, float]:
    """`ray start --resources='{"slot": 1}'`; KubeRay's rayStartParams quote the JSON once more."""
    text = text.strip()
    if text.startswith('"') and text.endswith('"'):
        text = json.loads(text)
    return {name: float(amount) for name, amount in json.loads(text or "{}").items()}


def kuberay_groups(doc: dict) -> list[tuple[str, int, dict]]:
    """(name, pods, group spec) of the head group and every worker group of a RayJob or RayCluster."""
    spec = doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]
    return [("head", 1, spec["headGroupSpec"])] + [(g["groupName"], g["replicas"], g) for g in spec["workerGroupSpecs"]]


def kuberay_nodes(doc: dict) -> list[ClusterNode]:
    """The Ray nodes a RayJob's cluster starts, the head first: what `ray start` is given
    (rayStartParams) or, for CPUs and GPUs, what KubeRay derives from the container's limits."""
    nodes = []
    for name, pods, group in kuberay_groups(doc):
        params = group.get("rayStartParams", {})
        assert not ("labels" in group and "labels" in params), f"{name}: labels both in the group and in rayStartParams"
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        resources = {
            "CPU": quantity(params.get("num-cpus", limits.get("cpu", 0))),
            "GPU": quantity(params.get("num-gpus", limits.get("nvidia.com/gpu", 0))),
            **ray_resources(params.get("resources", "{}")),
        }
        labels = {**ray_labels(params.get("labels", "")), **group.get("labels", {})}
        nodes += [ClusterNode(f"{name}-{i}", f"{name}-{i}", resources, labels) for i in range(pods)]
    return nodes


def bash_array(script: str, name: str) -> list[str] | dict[str, str]:
    """A bash array assigned on one line: `NAME=(a b)` as a list, `declare -A NAME=([k]=v ...)` as a dict."""
    match = re.search(rf"^(declare -A )?{name}=\((.*)\)$", script, re.MULTILINE)
    assert match, f"the script assigns no array {name}"
    words = shlex.split(match.group(2))
    if not match.group(1):
        return words
    return dict(re.fullmatch(r"\[(\w+)\]=(.*)", w).groups() for w in words)


def sbatch_option(script: str, option: str) -> str:
    match = re.search(rf"^#SBATCH --{option}=(\S+)$", script, re.MULTILINE)
    assert match, f"no #SBATCH --{option}"
    return match.group(1)


def slurm_nodes(script: str) -> list[ClusterNode]:
    """The Ray nodes the batch script starts, node 0 (the head) first: one per Slurm node, its
    role by index, its CPUs and GPUs those of the allocation."""
    roles, labels, resources = (
        bash_array(script, "ROLES"),
        bash_array(script, "RAY_LABELS"),
        bash_array(script, "RAY_RESOURCES"),
    )
    assert len(roles) == int(sbatch_option(script, "nodes")), "ROLES must name one role per node of the allocation"
    # The `ray start` of every node passes its role's labels and resources, and its CPUs and GPUs.
    for flag in (
        '--labels="${RAY_LABELS[$role]}"',
        '--resources="${RAY_RESOURCES[$role]}"',
        '--num-cpus="$SLURM_CPUS_PER_TASK"',
        '--num-gpus="$SLURM_GPUS_ON_NODE"',
    ):
        assert flag in script, f"ray start lacks {flag}"
    each = {"CPU": float(sbatch_option(script, "cpus-per-task")), "GPU": float(sbatch_option(script, "gpus-per-node"))}
    return [
        ClusterNode(f"node{i}", f"node{i}", {**each, **ray_resources(resources[role])}, ray_labels(labels[role]))
        for i, role in enumerate(roles)
    ]


def placement_problems(config: TrainConfig, nodes: list[ClusterNode]) -> list[str]:
    """What of the config's placement the nodes cannot give; [] when every role fits."""
    problems = []
    for section in ("rollout", "serve", "learner"):
        placement = getattr(config, section).placement
        for key, value in placement.node_labels.items():
            if not any(n.labels.get(key) == value for n in nodes):
                problems.append(f"{section}.placement.node_labels.{key}={value}: no node carries that label")
        for name in placement.resources:
            if not any(name in n.resources for n in nodes):
                problems.append(f"{section}.placement.resources.{name}: no node has that resource")
    head, workers = nodes[0], nodes[1:]
    for order in itertools.permutations(workers):  # Ray orders the workers by address: any order
        try:
            plan_placement(role_demands(config), [head, *order])
        except PlacementError as err:
            problems.append(str(err))
            break
    return problems


# --- the recipes -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rayjob() -> dict:
    docs = [d for d in yaml.safe_load_all(RAYJOB.read_text()) if d]
    assert [d["kind"] for d in docs] == ["RayJob"]
    return docs[0]


@pytest.fixture(scope="module")
def sbatch() -> str:
    return SBATCH.read_text()


def recipe_commands(rayjob: dict, sbatch: str) -> dict[str, tuple[list[str], list[ClusterNode]]]:
    return {
        "kuberay": (launch_commands(rayjob["spec"]["entrypoint"]), kuberay_nodes(rayjob)),
        "slurm": (launch_commands(sbatch), slurm_nodes(sbatch)),
    }


@pytest.mark.parametrize("recipe", ["kuberay", "slurm"])
def test_each_recipe_trains_with_a_config_this_checkout_accepts_on_the_cluster_it_defines(recipe, rayjob, sbatch):
    commands, nodes = recipe_commands(rayjob, sbatch)[recipe]
    assert len(commands) == 1 and commands[0][0] == "train"
    config = load_command(commands[0])
    assert placement_problems(config, nodes) == []
    # The tested recipe's placement: the pool on the head, the actors on rollout nodes, one
    # learner rank per learner_slot node.
    assert config.serve.placement.node_labels == {"role": "head"}
    assert config.rollout.placement.node_labels == {"role": "rollout"}
    assert config.learner.placement.resources == {"learner_slot": 1.0} and config.learner.placement.per_node == 1
    assert config.learner.num_ranks == sum(n.resources.get("learner_slot", 0) for n in nodes)
    # Sockets beyond loopback are protected, so the run starts without allow_insecure.
    found = exposure(config, {}, serves_http=config.serve.live)
    assert found.refused == () and found.warnings == ()
    assert config.curve.keys_dir and config.ray.address


def test_a_misspelled_key_an_unknown_command_or_a_missing_config_file_is_caught(rayjob):
    good = launch_commands(rayjob["spec"]["entrypoint"])[0]
    with pytest.raises(ConfigError, match="unknown config key 'learner.placment.per_node'"):
        load_command([w.replace("learner.placement.per_node", "learner.placment.per_node") for w in good])
    with pytest.raises(ConfigError, match="not a launch.py command"):
        load_command(["trian", *good[1:]])
    with pytest.raises(ConfigError, match="configs/paper_3.yaml is not a file"):
        load_command([w.replace("paper_3b", "paper_3") for w in good])
    with pytest.raises(SystemExit):  # a flag train does not take: a usage error
        load_command([*good, "--image", "x.png"])
    bad_value = "cd /x && python launch.py train learner.num_ranks=$RANKS"  # a typed key must be literal
    with pytest.raises(ConfigError, match="learner.num_ranks"):
        load_command(launch_commands(bad_value)[0])


def test_a_placement_no_node_can_give_is_caught(rayjob):
    config = load_command(launch_commands(rayjob["spec"]["entrypoint"])[0])
    nodes = kuberay_nodes(rayjob)
    config.rollout.placement.node_labels = {"role": "rolout"}
    config.learner.placement.resources = {"learner_slots": 1.0}
    problems = placement_problems(config, nodes)
    assert "rollout.placement.node_labels.role=rolout: no node carries that label" in problems
    assert "learner.placement.resources.learner_slots: no node has that resource" in problems
    # Labels right, but too few GPUs for the pool on the head: the planner says so.
    config = load_command(launch_commands(rayjob["spec"]["entrypoint"])[0])
    config.serve.num_replicas = 5
    assert any("cannot place 5 reasoner replica(s)" in p for p in placement_problems(config, nodes))


def test_the_nodes_parsed_from_each_recipe_carry_the_tested_labels_and_resources(rayjob, sbatch):
    for _, nodes in recipe_commands(rayjob, sbatch).values():
        assert [(n.labels, n.resources.get("learner_slot", 0)) for n in nodes] == [
            ({"role": "head"}, 1.0),
            ({"role": "rollout"}, 0),
            ({"role": "learner"}, 1.0),
        ]
        assert all(n.resources["GPU"] >= 1 for n in nodes)


# --- secrets, keys and shared memory in the KubeRay manifest ---------------------------------


def containers(doc: dict) -> list[tuple[str, dict, dict]]:
    """(name, container, pod spec) of every pod the RayJob makes: each group's and the submitter's."""
    pods = [(name, group["template"]["spec"]) for name, _, group in kuberay_groups(doc)]
    if "submitterPodTemplate" in doc["spec"]:
        pods.append(("submitter", doc["spec"]["submitterPodTemplate"]["spec"]))
    return [(name, c, pod) for name, pod in pods for c in pod["containers"]]


def literal_secrets(doc: dict) -> list[str]:
    """Environment variables that look like secrets and are given a literal value."""
    return [
        f"{name}: {env['name']}"
        for name, container, _ in containers(doc)
        for env in container.get("env", [])
        if SECRET_NAME.search(env["name"]) and "value" in env
    ]


def test_every_pod_takes_the_cluster_token_from_a_secret_and_none_is_literal(rayjob):
    for name, container, _ in containers(rayjob):
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["RAY_AUTH_MODE"]["value"] == "token", name
        assert "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"], name
    assert literal_secrets(rayjob) == []
    # The same check on a manifest with the token written in.
    leaked = yaml.safe_load(RAYJOB.read_text())
    leaked["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "RAY_AUTH_TOKEN", "value": "0123456789abcdef"}
    )
    assert literal_secrets(leaked) == ["head: RAY_AUTH_TOKEN"]


def test_every_ray_pod_mounts_the_curve_keys_where_the_command_says_and_a_memory_backed_shm(rayjob):
    config = load_command(launch_commands(rayjob["spec"]["entrypoint"])[0])
    for name, container, pod in containers(rayjob):
        if name == "submitter":
            continue
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        keys = mounts[config.curve.keys_dir]["secret"]
        assert {item["path"] for item in keys["items"]} >= {
            "server.key",
            "clients/client.key",
            "clients/client.key_secret",
        }, name
        assert mounts["/dev/shm"]["emptyDir"]["medium"] == "Memory", name


# --- secrets in the Slurm script -------------------------------------------------------------


def assigned_secrets(script: str) -> list[str]:
    """Secret-looking variables the script assigns a value of its own (rather than reading the
    environment)."""
    code = [line for line in script.splitlines() if not line.lstrip().startswith("#")]
    return [
        m.group(1)
        for line in code
        for m in re.finditer(r"(?:^|[\s;])(\w+)=(?!\$)", line)
        if SECRET_NAME.search(m.group(1))
    ]


def test_the_batch_script_reads_the_token_from_the_environment_and_stops_ray_on_exit(sbatch):
    assert assigned_secrets(sbatch) == []
    assert assigned_secrets("export RAY_AUTH_TOKEN=0123456789abcdef\n") == ["RAY_AUTH_TOKEN"]
    assert "export RAY_AUTH_MODE=token" in sbatch
    assert '-z "${RAY_AUTH_TOKEN:-}"' in sbatch  # refuses to start without one
    assert "trap stop_ray EXIT" in sbatch and "ray stop" in sbatch


def test_the_docs_explain_both_recipes_and_the_readme_links_them():
    page = (ROOT / "docs" / "multi-node.md").read_text()
    assert "examples/kuberay/rayjob-paper-3b.yaml" in page and "examples/slurm/train-paper-3b.sbatch" in page
    assert "docs/multi-node.md" in (ROOT / "README.md").read_text()


FAKE_COMMANDS = {
    # srun: log the step, drop its options, run the command on "this" node.
    "srun": 'echo "srun $*" >> "$LOG"; while [[ $1 == --* ]]; do shift; done; exec "$@"',
    "scontrol": "printf 'gpu01\\ngpu02\\ngpu03\\n'",
    "hostname": 'echo "10.0.0.1 10.0.1.1"',
    "ray": 'echo "ray $* auth=$RAY_AUTH_MODE" >> "$LOG"',
    # python -c (the script's wait for the nodes): how many nodes have started so far.
    "python": (
        'if [[ $1 == -c ]]; then echo "connecting"; grep -c "^ray start" "$LOG"; '
        'else echo "python $* auth=$RAY_AUTH_MODE" >> "$LOG"; fi'
    ),
    "sleep": "command -p sleep 0.05",
}


def test_the_batch_script_starts_each_node_with_its_roles_flags_and_stops_ray_when_done(tmp_path):
    """The script run under stand-ins for srun, scontrol, ray and python: what each node's
    `ray start` gets, the driver's command, and `ray stop` at the end."""
    for name, body in FAKE_COMMANDS.items():
        (tmp_path / name).write_text(f"#!/bin/bash\n{body}\n")
        (tmp_path / name).chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "LOG": str(tmp_path / "log"),
        "SLURM_JOB_NODELIST": "gpu[01-03]",
        "SLURM_CPUS_PER_TASK": "32",
        "SLURM_GPUS_ON_NODE": "8",
        "SLURM_JOB_ID": "7",
        "RAY_AUTH_TOKEN": "from-the-environment",
        "CURVE_KEYS_DIR": "/keys",
        "CAPTION_RL_DIR": str(tmp_path),
        "DATA_DIR": "/data",
    }
    done = subprocess.run(["bash", str(SBATCH)], check=False, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "log").read_text().splitlines()
    starts = {
        line.split("--nodelist=")[1].split()[0]: line
        for line in log
        if line.startswith("srun") and " ray start " in line
    }
    assert "--head --port=6379 --node-ip-address=10.0.0.1" in starts["gpu01"]
    assert all("--address=10.0.0.1:6379" in starts[node] for node in ("gpu02", "gpu03"))
    for node, flags in {
        "gpu01": 'role=head --resources={"learner_slot": 1}',
        "gpu02": "role=rollout --resources={}",
        "gpu03": 'role=learner --resources={"learner_slot": 1}',
    }.items():
        assert f"--num-cpus=32 --num-gpus=8 --labels={flags}" in starts[node]
    assert all(line.endswith("auth=token") for line in log if line.startswith(("ray ", "python ")))
    driver = [line for line in log if line.startswith("python launch.py train")]
    assert len(driver) == 1 and "ray.address=10.0.0.1:6379" in driver[0] and "curve.keys_dir=/keys" in driver[0]
    # The driver ran only once every node had started.
    assert log.index(driver[0]) > max(i for i, line in enumerate(log) if line.startswith("ray start"))
    stop = "srun --overlap --nodes=3 --ntasks-per-node=1 ray stop --force"  # the trap, after the run
    assert stop in log and log.index(stop) > log.index(driver[0])
    # Without a token it refuses to start, before any node.
    del env["RAY_AUTH_TOKEN"]
    (tmp_path / "log").unlink()
    refused = subprocess.run(["bash", str(SBATCH)], check=False, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "set RAY_AUTH_TOKEN" in refused.stderr and not (tmp_path / "log").exists()
