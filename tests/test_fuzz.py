"""The CLI fuzzer (tests/fuzz_cli.py), bounded for CI: a few derandomized commands per verb, each full of hostile
values, each checked against the fuzzer's rules (exit 0 or 2, no traceback, a one-line error, nothing written
beside the named output, inputs never clobbered, strict JSON, NaN refused, no hang).

bench/fuzz.py runs the same fuzzer for as long as you like (``--examples N --seed S``) and reports every failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings

from .fuzz_cli import VERBS, commands
from .fuzz_sandbox import drop_read_only, make_template, read_only_works, run_in_sandbox

EXAMPLES_PER_VERB = 25  # × 25 verbs = 625 runs: about 2 minutes on 2 cores (docs/benchmarks.md)
TIMEOUT_S = 15.0  # a run the fuzzer stops after this long fails ("timeout"): a huge count nobody refused


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return make_template(tmp_path_factory.mktemp("fuzz") / "template")


@pytest.mark.slow
@pytest.mark.parametrize("verb", list(VERBS))
def test_cli_survives_hostile_values(template, tmp_path_factory, verb):
    read_only = read_only_works(template)
    work = tmp_path_factory.mktemp("fuzz-work") / "sandbox"

    @settings(
        max_examples=EXAMPLES_PER_VERB,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: each run costs up to TIMEOUT_S
        suppress_health_check=list(HealthCheck),
    )
    @given(cmd=commands([verb]))
    def property_holds(cmd) -> None:  # noqa: ANN001
        assume(drop_read_only(cmd, read_only))  # as root a 0o500 folder takes writes: that value tests nothing
        outcome = run_in_sandbox(template, cmd, work, timeout=TIMEOUT_S)
        assert not outcome.problems, outcome.report()

    property_holds()
