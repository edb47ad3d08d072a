"""Bad input ends in one line, exit 2, and nothing written (issue 24, items 10, 5, 6 and 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalarize.cli.main import main

SECRET = "root:$6$s3cr3tHash$abcdefghijklmnop:20228:0:99999:7:::"


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("scalarize: error: "), err
    return err


# -- item 10: a config error never quotes a file that is not a config --------------------------------
@pytest.mark.parametrize("content", [f"{SECRET}\nbin:*:20228:0:99999:7:::\n", f"epochs: {SECRET[:20]}\n",
                                     f"model: {{'{SECRET}': 1}}\n"])
def test_an_error_in_a_file_not_named_yaml_quotes_its_position_only(tmp_path, capsys, content):
    shadow = tmp_path / "shadow"
    shadow.write_text(content)
    assert main(["train", str(shadow), f"output={tmp_path / 'out'}"]) == 2
    err = _error(capsys)
    assert f"{shadow}, line 1: " in err and "not quoted" in err
    assert "s3cr3t" not in err and "$6$" not in err and "20228" not in err
    assert not (tmp_path / "out").exists()


def test_an_error_in_a_yaml_file_still_quotes_it(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("colour: red\n")
    assert main(["train", str(config), f"output={tmp_path / 'out'}"]) == 2
    assert "colour: unknown key; allowed: name" in _error(capsys)


def test_an_override_error_on_a_file_not_named_yaml_is_quoted_as_before(tmp_path, capsys):
    config = tmp_path / "c.conf"
    config.write_text("epochs: 1\n")
    assert main(["train", str(config), "colour=red", f"output={tmp_path / 'out'}"]) == 2
    assert "colour: unknown key" in _error(capsys)
