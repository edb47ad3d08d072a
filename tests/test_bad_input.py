"""Bad input ends in one line, exit 2, and nothing written (issue 24, items 10, 5, 6 and 7)."""

from __future__ import annotations

import pytest

from scalarize.cli.main import main

SECRET = "root:$6$s3cr3tHash$abcdefghijklmnop:20228:0:99999:7:::"


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("scalarize: error: "), err
    return err


# -- item 10: a config error never quotes a file that is not a config --------------------------------
@pytest.mark.parametrize(
    "content", [f"{SECRET}\nbin:*:20228:0:99999:7:::\n", f"epochs: {SECRET[:20]}\n", f"model: {{'{SECRET}': 1}}\n"]
)
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


# -- items 5 and 6: input that gave a traceback, or was accepted ----------------------------------
TRAIN = "name: b\nbenchmark: {name: synthetic, options: {num_tasks: 2, train_size: 40, val_size: 20, test_size: 20}}\n"


def _refused(tmp_path, capsys, text: str, overrides: list[str], expected: str, command: str = "train") -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    out = tmp_path / "out"
    assert main([command, str(config), f"output={out}", *overrides, "-q"]) == 2
    assert expected in _error(capsys)
    assert not out.exists()


def test_a_deeply_nested_yaml_file_is_one_line(tmp_path, capsys):
    _refused(tmp_path, capsys, "model: {options: {x: " + "[" * 3000 + "]" * 3000 + "}}\n", [], "nested too deeply")
    _refused(tmp_path, capsys, "model: {options: {x: " + "[" * 100 + "]" * 100 + "}}\n", [], "nested too deeply")


def test_a_deeply_nested_override_is_one_line(tmp_path, capsys):
    _refused(tmp_path, capsys, TRAIN, ["model.options.x=" + "[" * 3000 + "]" * 3000], "model.options.x: cannot parse")
    _refused(tmp_path, capsys, TRAIN, ["model.options.x=" + "[" * 100 + "]" * 100], "nested too deeply")


def test_a_401_digit_integer_is_refused_before_anything_is_written(tmp_path, capsys):
    _refused(tmp_path, capsys, TRAIN, ["epochs=" + "9" * 401], "epochs: a 401-digit number")
    _refused(tmp_path, capsys, TRAIN, ["sweep.seeds=[" + "9" * 30 + "]"], "sweep.seeds: a 30-digit number", "sweep")


def test_a_5000_character_name_is_refused_before_the_database_exists(tmp_path, capsys):
    _refused(tmp_path, capsys, TRAIN, ["name=" + "x" * 5000], "name: 5,000 bytes; allowed: at most 100")


def test_a_zero_study_width_is_one_line(tmp_path, capsys):
    study = TRAIN + "study: {depths: [1], groups: [[task0, task1]]}\n"
    _refused(tmp_path, capsys, study, ["study.widths=[0]"], "study.widths: every width must be > 0", "study")
    _refused(tmp_path, capsys, study, ["study.depths=[-1]"], "study.depths: every depth must be >= 0", "study")


@pytest.mark.parametrize(
    ("override", "command"),
    [
        ("method.weights=[true,false]", "train"),
        ("sweep.seeds=[true]", "sweep"),
        ("sweep.weights=[[true,false]]", "sweep"),
    ],
)
def test_booleans_inside_number_lists_are_refused(tmp_path, capsys, override, command):
    text = TRAIN + ("sweep: {design: list}\n" if command == "sweep" else "")
    _refused(tmp_path, capsys, text, [override], f"{override.split('=')[0]}: expected a number, got true", command)


def test_a_huge_sobol_design_is_bounded(tmp_path, capsys):
    _refused(
        tmp_path,
        capsys,
        TRAIN + "sweep: {design: sobol}\n",
        ["sweep.points=100000000"],
        "sweep.points: Input should be less than or equal to 10000",
        "sweep",
    )


# -- item 7: argparse's own two-line errors --------------------------------------------------------
def test_an_override_without_equals_after_an_option_is_one_line(tmp_path, capsys):
    _refused(tmp_path, capsys, TRAIN, ["-q", "epochs"], "epochs: an override is key=value")


def test_an_unknown_option_is_one_line(tmp_path, capsys):
    _refused(tmp_path, capsys, TRAIN, ["--colour"], "unrecognized argument '--colour'; see `scalarize train --help`")


def test_export_without_csv_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path)]) == 2
    assert "scalarize export DIRECTORY --csv" in _error(capsys)
