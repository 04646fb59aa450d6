"""A long run of the CLI fuzzer (tests/fuzz_cli.py): many commands with hostile values, one JSON object on stdout.

    PYTHONPATH=src python bench/fuzz.py --examples 500 --seed 0      # ~10-20 minutes on 2 CPU cores
    PYTHONPATH=src python bench/fuzz.py --examples 40 --verb "edit inpaint" --verb segment

Reports: runs, commands tried per verb, tracebacks, files changed outside the named output, inputs clobbered,
invalid JSON outputs, the exit-code histogram, and every failing command with its problems and stderr's tail
(each command runs in a fresh copy of a sandbox of small inputs: tests/fuzz_sandbox.py holds it and the checker).
The checker's rules are in tests/fuzz_cli.py's docstring; tests/test_fuzz.py runs a bounded, derandomized subset.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fuzz_cli

from hypothesis import HealthCheck, Phase, assume, given, seed, settings  # noqa: E402
from tests.fuzz_cli import VERBS, commands  # noqa: E402
from tests.fuzz_sandbox import drop_read_only, make_template, read_only_works, run_in_sandbox  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=300, help="commands to run")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed: the same seed draws the same commands")
    parser.add_argument("--verb", action="append", choices=list(VERBS), help="fuzz only these verbs (repeatable)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a run may take before it is stopped")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="genlab-fuzz-") as tmp:
        template = make_template(Path(tmp) / "template")
        read_only = read_only_works(template)

        @seed(args.seed)
        @settings(
            max_examples=args.examples,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(cmd=commands(args.verb))
        def run(cmd) -> None:  # noqa: ANN001
            assume(drop_read_only(cmd, read_only))
            outcome = run_in_sandbox(template, cmd, Path(tmp) / "work", timeout=args.timeout)
            outcomes.append(outcome)
            mark = "FAIL" if outcome.problems else "ok"
            print(f"{mark:4} {outcome.code!s:9} {outcome.seconds:6.2f}s {outcome.command}", file=sys.stderr)

        run()

    failing = [o for o in outcomes if o.problems]
    result = {
        "runs": len(outcomes),
        "seed": args.seed,
        "read_only_folder_tested": read_only,
        "commands_per_verb": dict(collections.Counter(o.command.verb for o in outcomes)),
        "distinct_commands": len({str(o.command) for o in outcomes}),
        "hostile_values_given": sum(len(o.command.hostile) for o in outcomes),
        "distinct_hostile_inputs": len(
            {(o.command.verb, k, v) for o in outcomes for k, v in o.command.hostile.items()}
        ),
        "tracebacks": sum("traceback" in o.problems for o in outcomes),
        "timeouts": sum(o.code == "timeout" for o in outcomes),
        "files_changed_outside_output": sum(bool(o.changed) for o in outcomes),
        "inputs_clobbered": sum(bool(o.clobbered) for o in outcomes),
        "invalid_json": sum(any(p.startswith("invalid JSON") for p in o.problems) for o in outcomes),
        "errors_not_one_line": sum("error not one line" in o.problems for o in outcomes),
        "nan_accepted": sum(any(p.startswith("NaN accepted") for p in o.problems) for o in outcomes),
        "exit_codes": dict(collections.Counter(str(o.code) for o in outcomes)),
        "seconds": round(sum(o.seconds for o in outcomes), 1),
        "failing": [
            {
                "command": str(o.command),
                "exit": o.code,
                "problems": o.problems,
                "hostile": o.command.hostile,
                "stderr_tail": o.err.strip().splitlines()[-3:],
            }
            for o in failing
        ],
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
