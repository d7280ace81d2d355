import subprocess
import sys

import pytest

from magicpose.interfaces.cli import main


def test_version_prints_and_exits_zero(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == __import__("magicpose").__version__


def test_console_script_help_lists_commands():
    result = subprocess.run(
        [sys.executable, "-m", "magicpose.interfaces.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "convert" in result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--resume", "c.yaml", "train.max_steps=3"],
        ["train", "c.yaml", "--resume", "train.max_steps=3"],
    ],
)
def test_train_takes_resume_before_or_after_the_config(argv, monkeypatch):
    from magicpose.interfaces.commands import train

    seen = {}
    monkeypatch.setattr(
        train, "run", lambda args: seen.update(config=args.config, resume=args.resume, overrides=args.overrides)
    )
    assert main(argv) == 0
    assert seen == {"config": "c.yaml", "resume": True, "overrides": ["train.max_steps=3"]}


def test_unknown_arguments_are_still_errors():
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "c.yaml", "--resume", "--nonsense"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("argv", [["--help"], ["animate", "--help"], ["evaluate", "--help"], ["train", "--help"]])
def test_help_answers_without_importing_the_heavy_libraries(argv):
    # `magicpose --help` builds every command's parser: none may import torch, diffusers or mediapipe to do so
    code = (
        "import sys\nfrom magicpose.interfaces.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'mediapipe', 'gradio', 'cv2') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
