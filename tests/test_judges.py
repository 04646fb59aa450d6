"""Judges (genlab.eval.judges): VADER sentiment, length in words, and a user's module:function."""

from __future__ import annotations

import sys
import uuid

import pytest

from genlab.errors import GenlabError
from genlab.eval.judges import load_judge


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Write a module into a fresh current folder; returns a function making it from source."""
    monkeypatch.chdir(tmp_path)
    names: list[str] = []

    def make(source: str) -> str:
        name = f"judge_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
        names.append(name)
        return name

    yield make
    for name in names:
        sys.modules.pop(name, None)


def test_sentiment_has_vaders_sign_and_range():
    judge = load_judge("sentiment")
    scores = judge(
        ["q", "q", "q"],
        ["I love this, it is wonderful and great!", "This is terrible, awful and sad.", "The table has four legs."],
    )
    assert scores[0] > 0.5 and scores[1] < -0.5 and scores[2] == 0.0
    assert all(-1 <= s <= 1 for s in scores)
    assert judge.name == "sentiment"


def test_sentiment_reads_the_response_not_the_prompt():
    judge = load_judge("sentiment")
    assert judge(["I hate everything"], ["What a lovely day"])[0] > 0


def test_length_counts_words():
    judge = load_judge("length")
    assert judge(["a", "b", "c"], ["one two  three", "", "  single\n"]) == [3.0, 0.0, 1.0]


def test_module_function_judge_is_called_per_pair(user_module):
    name = user_module("def score(prompt, response):\n    return len(prompt) - len(response)\n")
    judge = load_judge(f"{name}:score")
    assert judge.name == f"{name}:score"
    assert judge(["abcd", "ab"], ["a", "abc"]) == [3.0, -1.0]


@pytest.mark.parametrize(
    "spec, needles",
    [
        ("vader", ["unknown judge", "sentiment", "length", "module:function"]),
        ("", ["unknown judge", "sentiment"]),
        (":score", ["expected module:function"]),
        ("nosuchmodule_xyz:score", ["no module named 'nosuchmodule_xyz'"]),
    ],
)
def test_bad_judge_spec_is_one_clear_error(spec, needles):
    with pytest.raises(GenlabError) as e:
        load_judge(spec)
    assert all(n in str(e.value) for n in needles), str(e.value)
    assert "\n" not in str(e.value)


def test_missing_function_names_the_judge(user_module):
    name = user_module("def other(p, r):\n    return 1.0\n")
    with pytest.raises(GenlabError, match=rf"^--judge {name}:score: {name} has no function 'score'$"):
        load_judge(f"{name}:score")


def test_not_callable_is_refused(user_module):
    name = user_module("score = 3\n")
    with pytest.raises(GenlabError, match="is not a function"):
        load_judge(f"{name}:score")


def test_a_module_that_fails_to_import_is_reported_in_one_line(user_module):
    name = user_module("def score(p, r)\n    return 1\n")  # a syntax error
    with pytest.raises(GenlabError, match=rf"{name}:score: importing {name} failed: SyntaxError"):
        load_judge(f"{name}:score")
    broken = user_module("import nosuchdependency_xyz\n\ndef score(p, r):\n    return 1\n")
    with pytest.raises(GenlabError, match="importing .* failed: No module named 'nosuchdependency_xyz'"):
        load_judge(f"{broken}:score")


@pytest.mark.parametrize("value", ["float('nan')", "float('inf')", "'high'", "None", "True", "[1.0]"])
def test_a_non_number_or_non_finite_return_is_refused(user_module, value):
    name = user_module(f"def score(p, r):\n    return {value}\n")
    judge = load_judge(f"{name}:score")
    with pytest.raises(GenlabError, match=rf"--judge {name}:score: returned .* for pair 1; a judge returns a finite"):
        judge(["p"], ["r"])


def test_an_exception_in_the_users_function_is_reported_naming_the_judge(user_module):
    name = user_module("def score(p, r):\n    return 1 / (len(r) - 1)\n")
    judge = load_judge(f"{name}:score")
    with pytest.raises(GenlabError, match=rf"--judge {name}:score: raised ZeroDivisionError on pair 2"):
        judge(["a", "b"], ["xx", "y"])


def test_integers_and_numpy_numbers_are_accepted(user_module):
    name = user_module("import numpy as np\n\ndef score(p, r):\n    return np.float32(0.5) if p else 2\n")
    assert load_judge(f"{name}:score")(["x", ""], ["r", "r"]) == [0.5, 2.0]
