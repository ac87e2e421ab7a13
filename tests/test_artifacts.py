"""mbmlab.artifacts: the one reader and writer of a run's metrics.json."""
import pytest

from mbmlab.artifacts import CorruptArtifactError, MissingArtifactError, log_metrics, read_metrics

# merging and refusing NaN: tests/lab/test_report.py::test_log_metrics_merges_and_refuses_non_finite


def test_a_missing_or_damaged_metrics_file_is_named(tmp_path):
    with pytest.raises(MissingArtifactError, match="metrics.json is missing"):
        read_metrics(tmp_path)
    path = tmp_path / "metrics.json"
    path.write_text('{"a": 1.0, "b": ')  # cut off mid-write
    with pytest.raises(CorruptArtifactError, match=r"metrics.json is not valid JSON"):
        read_metrics(tmp_path)
    with pytest.raises(CorruptArtifactError):  # a later log must not silently start from nothing
        log_metrics(tmp_path, {"c": 1.0})
    path.write_text('{"a": "high"}')
    with pytest.raises(CorruptArtifactError, match="name → number"):
        read_metrics(tmp_path)
