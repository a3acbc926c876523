"""Shared fixtures: a `backend` fixture over the backends available here."""
import pytest

from exodiff.backends import cuda_unavailable_reason

CPU_BACKENDS = ["numpy", "numba"]
AVAILABLE_BACKENDS = CPU_BACKENDS + (["cuda"] if cuda_unavailable_reason() is None else [])


@pytest.fixture(params=AVAILABLE_BACKENDS)
def backend(request):
    return request.param
