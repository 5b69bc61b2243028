import pandas as pd
import pytest

from npc_lib.data.split import assert_disjoint, patient_folds, patient_split
from npc_lib.data.staging import overall_stage


@pytest.mark.parametrize("t,n,stage", [
    ("T1", "N0", "I"), ("T1", "N1", "II"), ("T2", "N0", "II"), ("T2", "N1", "II"),
    ("T1", "N2", "III"), ("T2", "N2", "III"), ("T3", "N0", "III"), ("T3", "N2", "III"),
    ("T4", "N0", "IV"), ("T4", "N2", "IV"), ("T1", "N3", "IV"), ("T3", "N3", "IV")])
def test_ajcc7_grouping(t, n, stage):
    assert overall_stage(t, n) == stage


def test_unknown_stage_is_rejected():
    with pytest.raises(ValueError, match="unknown T stage"):
        overall_stage("T5", "N0")


def _clinical(n=100, dm_every=4):
    return pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(n)],
                         "dm": [int(i % dm_every == 0) for i in range(n)]})


def test_split_is_stratified_4_to_1_and_deterministic():
    c = _clinical()
    s1, s2 = patient_split(c, seed=3), patient_split(c, seed=3)
    assert (s1 == s2).all()
    assert (s1 == "test").sum() == 20
    dm = c.set_index("patient_id")["dm"]
    assert dm[s1 == "test"].sum() == 5 and dm[s1 == "train"].sum() == 20
    assert not (patient_split(c, seed=4) == s1).all()


def test_split_column_is_respected():
    c = _clinical(10).assign(split=["test"] * 2 + ["train"] * 8)
    s = patient_split(c)
    assert list(s[s == "test"].index) == ["P000", "P001"]


def test_overlap_is_impossible():
    s = pd.Series(["train", "test"], index=["P1", "P1"])
    with pytest.raises(AssertionError, match="P1"):
        assert_disjoint(s)


def test_folds_partition_patients():
    f = patient_folds(_clinical(), k=5, seed=1)
    assert sorted(f.unique()) == [0, 1, 2, 3, 4]
    assert f.value_counts().min() == 20
