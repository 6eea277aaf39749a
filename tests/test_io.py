import pandas as pd
import pyarrow.parquet as pq

from simsurvey.io import SCHEMA_VERSION, schema_version, write_parquet


def test_write_parquet_is_atomic_and_versioned(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    path = write_parquet(df, tmp_path / "sub" / "t.parquet", kind="test")
    assert schema_version(path) == SCHEMA_VERSION
    meta = pq.read_schema(path).metadata
    assert meta[b"simsurvey.kind"] == b"test" and b"pandas" not in meta
    pd.testing.assert_frame_equal(pd.read_parquet(path), df, check_dtype=False)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["t.parquet"]  # no temp files left


def test_outputs_are_readable_by_others(tmp_path):
    path = write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet", kind="test")
    assert path.stat().st_mode & 0o044 == 0o044
