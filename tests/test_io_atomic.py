from __future__ import annotations

from pathlib import Path

import pytest

from simsurvey.io import atomic_path, write_bytes


def test_write_bytes_atomic_and_shared(tmp_path):
    path = write_bytes(tmp_path / "sub" / "a.html", b"<p>x</p>")
    assert path.read_bytes() == b"<p>x</p>"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["a.html"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "r.dta"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.endswith(".dta")  # writers that infer the format from the suffix still work
            Path(tmp).write_bytes(b"half")
            raise RuntimeError("crash")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["r.dta"]
