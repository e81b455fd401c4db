"""The privacy tests catch every planted leak (tests/privacy/plant_leaks.py), on every CI run.

A guard that cannot fail proves nothing: each leak of ``plant_leaks.LEAKS``
is planted into a throwaway copy of the tree and the whole-life tests must
fail there, while a clean copy must pass. Takes several minutes.
"""

from __future__ import annotations

import pytest

from tests.privacy import plant_leaks

pytestmark = pytest.mark.slow


def test_every_planted_leak_is_caught(capsys: pytest.CaptureFixture[str]) -> None:
    code = plant_leaks.main([])
    table = capsys.readouterr().out
    assert "clean copy           passes" in table, table
    assert f"{len(plant_leaks.LEAKS)} of {len(plant_leaks.LEAKS)} planted leaks caught" \
        in table, table
    assert code == 0, table
