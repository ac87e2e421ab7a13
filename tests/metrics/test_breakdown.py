import pandas as pd

from mbmlab.metrics.breakdown import confusion, worst

QA = pd.DataFrame({"answer": ["red", "red", "blue", "no", "no", "no"],
                   "prediction": ["Red", "blue", "blue", "yes", "no", "maybe"],
                   "question_type": ["colour", "colour", "colour", "yes/no", "yes/no", "yes/no"]})


def test_confusion_counts_by_hand():
    table = confusion(QA, top=2)  # the two most frequent true answers: "no" (3), "red" (2)
    assert list(table.index) == ["no", "red"] and list(table.columns) == ["no", "red", "(other)"]
    assert table.loc["no"].tolist() == [1, 0, 2]  # "yes" and "maybe" are outside the top answers
    assert table.loc["red"].tolist() == [0, 1, 1]  # "blue" is not a top true answer here


def test_worst_groups_wrong_answers():
    table = worst(QA)
    assert table["count"].sum() == 3 and set(table["prediction"]) == {"blue", "yes", "maybe"}
    assert worst(QA[QA["answer"] == QA["prediction"]]).empty
