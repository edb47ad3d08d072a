"""First use and daily use of the command: switching methods, missing sections, what the command
says about itself, and the docs agreeing with it."""

import re
import shlex
from pathlib import Path

import pytest

from scalarize.cli.main import build_parser, main
from scalarize.experiments.train import load_train_config
from scalarize.methods.registry import available_methods

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = str(ROOT / "configs" / "multimnist.yaml")
SMALL = "benchmark={name: synthetic, options: {num_tasks: 2, train_size: 100, val_size: 50, test_size: 50}}"


def _one_line_error(capsys, code, expected):
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("scalarize: error: ") and expected in err, err


# -- switching methods on the command line --------------------------------------------------------
def test_switching_to_a_method_without_weights_drops_the_files_weights_and_says_so():
    said = []
    config = load_train_config(SHIPPED, ["method.name=pcgrad"], log=said.append)
    assert config.method.name == "pcgrad" and config.method.weights is None
    assert said == [
        "method.name=pcgrad: dropped method.weights [0.5, 0.5] set for scalarization in the config "
        "file (pcgrad does not take it)"
    ]


def test_quiet_hides_progress_not_what_a_method_switch_dropped(tmp_path, capsys):
    """``-q`` (issue 28 item 8): the bars go, the one line saying what the switch dropped stays."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: q\nbenchmark: {name: multimnist, options: {train_size: 60, test_size: 20}}\nmodel: {width: 0.05}\n"
        "method: {name: scalarization, weights: [0.7, 0.3]}\nsteps: 2\nbatch_size: 20\nstl: false\ndevice: cpu\n"
    )
    assert main(["train", str(config), f"output={tmp_path / 'out'}", "method.name=pcgrad", "-q"]) == 0
    said = capsys.readouterr()
    assert "method.name=pcgrad: dropped method.weights [0.7, 0.3]" in said.out and "step/s" not in said.err, said


def test_switching_keeps_the_options_the_new_method_takes(tmp_path):
    path = tmp_path / "famo.yaml"
    path.write_text("method: {name: famo, options: {lr: 0.1, max_norm: 1.0}}\n")
    said = []
    config = load_train_config(path, ["method.name=nash_mtl"], log=said.append)
    assert config.method.options == {"max_norm": 1.0}
    assert said == [
        "method.name=nash_mtl: dropped method.options.lr set for famo in the config file (nash_mtl does not take it)"
    ]
    assert load_train_config(path, ["method.name=famo"], log=said.append).method.options == {"lr": 0.1, "max_norm": 1.0}
    assert len(said) == 1  # same method: nothing dropped, nothing said


def test_weights_given_on_the_command_line_still_error_for_a_method_without_weights(tmp_path, capsys):
    output = tmp_path / "out"
    code = main(["train", SHIPPED, "method.name=pcgrad", "method.weights=[0.7,0.3]", f"output={output}", SMALL])
    _one_line_error(capsys, code, "method.weights: pcgrad takes no weights")
    assert not output.exists()


# -- the command's section ----------------------------------------------------------------------
@pytest.mark.parametrize("command", ["sweep", "compare", "pbt", "study"])
def test_a_config_without_the_commands_section_is_refused(tmp_path, capsys, command):
    output = tmp_path / "out"
    code = main([command, SHIPPED, f"output={output}", "-q"])
    _one_line_error(capsys, code, f"multimnist.yaml: no {command}: section; `scalarize {command}` needs one")
    assert not output.exists()


def test_an_override_that_sets_the_section_is_enough(tmp_path):
    from scalarize.experiments.sweep import load_sweep_config

    assert load_sweep_config(SHIPPED, ["sweep.step=0.5"]).sweep.step == 0.5


def test_a_population_of_one_is_refused(tmp_path, capsys):
    output = tmp_path / "out"
    code = main(["pbt", str(ROOT / "configs" / "multimnist-pbt.yaml"), "pbt.population=1", f"output={output}"])
    _one_line_error(capsys, code, "pbt.population: Input should be greater than or equal to 2")
    assert not output.exists()


# -- what the command says about itself ---------------------------------------------------------
def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert re.match(r"scalarize \d+\.\d+\.\d+ \(torch ", capsys.readouterr().out)


def test_device_flag_is_the_last_override():
    from scalarize.cli.main import _overrides

    args = build_parser().parse_args(["train", SHIPPED, "device=cuda", "--device", "cpu"])
    assert load_train_config(args.config, _overrides(args)).device == "cpu"


def test_config_prints_a_sections_keys_types_and_defaults(capsys):
    assert main(["config", "pbt"]) == 0
    out = capsys.readouterr().out
    population = next(line for line in out.splitlines() if line.startswith("pbt.population "))
    assert "int (>= 2, <= 4096)" in population and " 8 " in population
    assert re.search(r"pbt\.algorithm\s+pbt \| pb2 \| mo-pbt\s+pbt", out)
    assert main(["config", "model.head"]) == 0
    assert "model.head.name" in capsys.readouterr().out
    assert main(["config"]) == 0
    sections = capsys.readouterr().out
    assert all(name in sections for name in ("train", "method", "tracking", "sweep", "compare.methods", "study.sweep"))
    _one_line_error(capsys, main(["config", "colour"]), "config: unknown section 'colour'; allowed: train")


def test_methods_lists_every_method_with_its_defaults(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line and line.split()[0] in available_methods()}
    assert set(rows) == set(available_methods())
    assert "c=0.4" in rows["cagrad"] and "weights=None" in rows["scalarization"]
    # every gradient method that can take its gradients on the representation says so
    assert "gradients='parameters'" in rows["pcgrad"] and "gradients" not in rows["scalarization"]
    assert "gradients" not in rows["sdmgrad"]  # draws other batches: parameters only
    assert main(["methods", "cagrad"]) == 0
    assert "Liu" in capsys.readouterr().out
    _one_line_error(capsys, main(["methods", "magic"]), "methods: unknown method 'magic'")


@pytest.mark.parametrize("command", ["train", "sweep", "compare", "pbt", "study"])
def test_help_lists_the_names_a_config_can_use_and_existing_examples(capsys, command):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "scalarize config SECTION" in out and "--device" in out
    if command in ("train", "compare"):
        assert all(name in out for name in ("pcgrad", "nash_mtl", "famo"))
    if command == "pbt":
        assert "mean_primary" in out and "constrained" in out and "pb2" in out
    if command == "sweep":
        assert "sobol" in out and "dirichlet" in out
    from scalarize.cli.starter import shipped_configs

    assert "scalarize init" in out and str(shipped_configs()) in out  # what is installed, not the repository
    assert shipped_configs().is_dir()


def test_every_command_line_of_the_readme_parses():
    """The README and the documentation (docs/) show only commands and options that exist."""
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    lines = [
        line.split("#")[0].strip()
        for document in documents
        for block in re.findall(r"```bash\n(.*?)```", document.read_text(encoding="utf-8"), flags=re.S)
        for line in block.splitlines()
    ]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith("scalarize ")]
    assert len(commands) >= 10
    parser = build_parser()
    for argv in commands:
        if argv == ["--version"]:  # prints and exits 0
            with pytest.raises(SystemExit, match="0"):
                parser.parse_known_args(argv)
            continue
        args, extra = parser.parse_known_args(argv)  # an unknown command exits here
        assert [e for e in extra if e.startswith("-")] == [], argv
