"""Shared fixtures: a `backend` fixture over the backends available here, and
the quick validation cases computed once per session."""
import functools

import pytest

from exodiff.backends import cuda_unavailable_reason

CPU_BACKENDS = ["numpy", "numba"]
AVAILABLE_BACKENDS = CPU_BACKENDS + (["cuda"] if cuda_unavailable_reason() is None else [])


@pytest.fixture(params=AVAILABLE_BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(scope="session")
def quick_case():
    """quick_case(name, backend, stepping): the CaseResult of
    `validate.run_case(CASES[name], backend, quick=True, stepping)`, run once
    per session.  The cases are seeded, so a second run would give the same
    result: tests/test_validation.py checks each one and tests/test_docs.py
    compares the documents' validate --quick table with the same results."""
    from exodiff import validate

    @functools.cache
    def run(name, backend, stepping):
        return validate.run_case(validate.CASES[name], backend=backend, quick=True, stepping=stepping)
    return run
