"""pytest-benchmark entries: every runner case, every implementation, on the CPU.

    pytest benchmarks/ --benchmark-only                       # all families
    pytest benchmarks/ --benchmark-only -k softmax_xent       # one family
"""
import importlib

import pytest

from cases import FAMILIES


def _params():
    for family in FAMILIES:
        module = importlib.import_module(f"cases.{family}")
        for case in module.cases("cpu"):
            for impl, fn in case.impls.items():
                if fn is not None:
                    yield pytest.param(fn, id=f"{family}-{case.name}-{impl}".replace(" ", "_"))


@pytest.mark.parametrize("fn", list(_params()))
def test_bench(benchmark, fn):
    benchmark(fn)
