"""scikit-learn's digits as a user folder (mbmlab.data.digits)."""
import csv

import numpy as np
import pytest
from PIL import Image

from mbmlab.data import digits


def test_the_folder_holds_each_digit_with_its_label_and_refuses_to_overwrite(tmp_path):
    sklearn = pytest.importorskip("sklearn.datasets")
    assert digits.write_folder(tmp_path / "d", limit=20) == 20
    rows = list(csv.DictReader(open(tmp_path / "d" / "metadata.csv")))
    truth = sklearn.load_digits()
    assert [r["answer"] for r in rows] == [digits.NAMES[t] for t in truth.target[:20]]
    assert {r["question"] for r in rows} == {digits.QUESTION}
    picture = np.asarray(Image.open(tmp_path / "d" / rows[3]["file_name"]).convert("L"), dtype=float)
    assert picture.shape == (32, 32)
    # the 4× picture is the 8×8 digit: ink (value 16) black, background (0) white
    np.testing.assert_allclose(picture[::4, ::4], np.round(255 - truth.images[3] * 255 / 16))
    with pytest.raises(FileExistsError):
        digits.write_folder(tmp_path / "d", limit=1)
