"""The command line (driver/cli.py): each command parses only its own flags, the default command
trains, and refusals end with exit code 2 before anything starts."""

import pytest

from driver.cli import main
from driver.commands import COMMANDS


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--image", "x.png"],  # infer's flag
        ["serve", "--run", "runs/x"],  # eval's flag
        ["eval", "--question", "q"],  # infer's flag
        ["infer", "--image", "x.png"],  # its question missing
        ["keys"],  # nothing to write where
    ],
)
def test_a_flag_another_command_owns_or_a_missing_one_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert f"launch.py {argv[0]}: error" in capsys.readouterr().err


def test_without_a_command_the_overrides_go_to_train(capsys):
    # A misspelled key: train's config refuses it before Ray or any role starts.
    assert main(["rollout.num_actor=3"]) == 2
    assert "config error: unknown config key 'rollout.num_actor'" in capsys.readouterr().err


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert all(f"  {name} " in shown for name in COMMANDS)


def test_a_missing_data_file_is_named_alone(capsys):
    # Not "required: file, overrides": the overrides may be left out.
    with pytest.raises(SystemExit) as stopped:
        main(["check-data"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().endswith("the following arguments are required: file")
