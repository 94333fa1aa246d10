import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

# CI sets REWARM_NO_SKIPS=1: there every test must run, and a skipped one (no SLURM, no Node.js
# tokenizer oracle, not root) is a failure that says why, instead of a quiet pass. Tests marked
# may_skip (the GPU builds, which CI cannot make) only report their skip.
NO_SKIPS = os.environ.get("REWARM_NO_SKIPS") == "1"


def pytest_configure(config):
    config.addinivalue_line("markers", "may_skip: a skip that REWARM_NO_SKIPS allows (reported with -rs)")
    config.addinivalue_line("markers", "long_numbers: a long test of numbers (learning, equality matrices, "
                                       "allocation sizes) that scripts/asan.sh leaves to the plain builds")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail") and not item.get_closest_marker("may_skip"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but REWARM_NO_SKIPS=1 requires every test to run: {reason}"
