"""The command line, run in-process."""

from __future__ import annotations

import json

from kubenas.cli import main
from kubenas.spaces import SPACES
from kubenas.strategies import STRATEGIES


def test_search_writes_history_and_state(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "search",
            "--space",
            "chain",
            "--space-options",
            '{"max_depth": 2, "widths": [4, 8]}',
            "--strategy",
            "random",
            "--dataset",
            "digits",
            "--max-evals",
            "2",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    history = json.loads((out / "history.json").read_text())
    state = json.loads((out / "state.json").read_text())
    assert len(history) == 2 and state["strategy"] == "random" and len(state["history"]) == 2
    assert "2 evaluated (2 ok, 0 failed), stopped by max_evals" in capsys.readouterr().out


def test_bad_input_is_reported_before_any_training(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--space-options", '{"widht": 8}', "--out", str(out)]) == 2
    assert "space 'nb201'" in capsys.readouterr().err and not out.exists()
    assert main(["search", "--epochs", "0", "--out", str(out)]) == 2
    assert "fidelity.epochs must be a positive integer" in capsys.readouterr().err
    assert main(["search", "--strategy", "local_search", "--strategy-options", '{"n_inti": 3}', "--out", str(out)]) == 2
    assert "unknown option(s) ['n_inti']" in capsys.readouterr().err and not out.exists()


def test_listings(capsys):
    assert main(["spaces"]) == 0 and main(["strategies"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in [*SPACES, *STRATEGIES])


def test_the_listings_give_one_whole_distinct_sentence_per_name(capsys):
    from kubenas.cli import main

    for command in ("strategies", "spaces"):
        assert main([command]) == 0
        out = capsys.readouterr().out.splitlines()
        lines = [line for line in out if line and not line.startswith(("one-shot", " "))]
        texts = [line.split(None, 1)[1] for line in lines]
        options = [line.strip() for line in out if line.startswith(" ")]  # each name's options, under it
        assert sum(o.startswith("options: ") for o in options) == len(lines)  # one options entry per name
        assert len(texts) >= 5 and len(set(texts)) == len(texts), texts  # no two names share a text
        for text in texts:
            assert text[0].isupper() and text.endswith((".", ")")) and "``" not in text, text


def test_one_name_is_described_whole_with_its_options(capsys):
    from kubenas.cli import main

    assert main(["strategies", "bayes_quadratic"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("bayes_quadratic\n") and "``interaction_scale`` (a pair feature's prior scale" in out
    assert "options: n_init=10, interactions='auto', interaction_scale=0.5" in out
    assert main(["spaces", "no_such_space"]) == 2
    assert "no space 'no_such_space'; registered: choice, chain" in capsys.readouterr().err


def test_every_option_of_every_command_says_what_it_does():
    import argparse

    from kubenas.cli import _parser

    missing = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif not action.help:
                missing.append((" ".join(path), action.dest))

    walk(_parser(), [])
    assert missing == []
