import subprocess
import sys

from magicpose.interfaces.cli import main


def test_version_prints_and_exits_zero(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == __import__("magicpose").__version__


def test_console_script_help_lists_commands():
    result = subprocess.run([sys.executable, "-m", "magicpose.interfaces.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "convert" in result.stdout
