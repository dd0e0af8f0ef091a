"""diffmrio.tables.read_emissions_csv: a long-format emission inventory onto a table's F, checked against an F built
independently with numpy (entries placed by explicit (region, sector) loops), plus every refused input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import diffmrio
from diffmrio.datasets import random_mrio
from diffmrio.tables import read_emissions_csv

R, N = 3, 3
SECTORS = ("01", "02", "10")  # codes that a number parser would turn into 1, 2, 10


@pytest.fixture(scope="module")
def table():
    m = random_mrio(R, N, 2, 2, seed=5, structure="uniform", density=1.0, sectors=SECTORS,
                    stressors=("CO2", "SO2"), units=("Mt", "kt"))  # fmt: skip
    return diffmrio.MRIO.from_arrays(
        m.Z, m.Y, m.F, np.arange(1.0, 1.0 + 2 * m.Y.shape[1]).reshape(2, -1), regions=m.regions, sectors=m.sectors,
        categories=m.categories, stressors=m.stressors, units=m.units, extensions=("air", "air"),
        population=[1.0, 2.0, 3.0], name="t",
    )  # fmt: skip


def write(path, rows, unit=True):
    cols = ["stressor", "region", "sector", "value"] + (["unit"] if unit else [])
    pd.DataFrame(rows, columns=cols).to_csv(path, index=False)
    return path


def inventory(table, seed=0):
    """Rows for a replaced CO2 (in the table's unit) and a new CH4, in shuffled order, some entries absent."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, unit in (("CH4", "kt"), ("CO2", "Mt")):
        for r in table.regions:
            for s in table.sectors:
                if rng.random() < 0.7:
                    rows.append((name, r, s, float(rng.uniform(0, 5)), unit))
    return [rows[k] for k in rng.permutation(len(rows))]


def test_rows_against_numpy(table, tmp_path):
    rows = inventory(table)
    got = read_emissions_csv(write(tmp_path / "e.csv", rows), table)
    # the expected F: the table's rows, CO2 replaced, CH4 appended, built entry by entry
    expected = {"CO2": np.zeros(R * N), "SO2": np.array(table.F[1]), "CH4": np.zeros(R * N)}
    for name, r, s, v, _ in rows:
        expected[name][table.regions.index(r) * N + table.sectors.index(s)] = v
    assert got.stressors == ("CO2", "SO2", "CH4")
    np.testing.assert_array_equal(np.asarray(got.F), np.vstack([expected[k] for k in got.stressors]))
    # F_Y: kept for the replaced and untouched rows, zero for the new one
    np.testing.assert_array_equal(np.asarray(got.F_Y[:2]), np.asarray(table.F_Y))
    np.testing.assert_array_equal(np.asarray(got.F_Y[2]), np.zeros(table.Y.shape[1]))
    assert got.units == ("Mt", "kt", "kt") and got.extensions == ("air", "air", "inventory")
    np.testing.assert_array_equal(np.asarray(got.population), [1.0, 2.0, 3.0])
    assert got.name == "t" and got.sectors == SECTORS
    np.testing.assert_array_equal(np.asarray(got.Z), np.asarray(table.Z))
    # the input table is untouched
    assert table.stressors == ("CO2", "SO2")


def test_labels_with_spaces_and_no_unit_column(table, tmp_path):
    rows = [("NH3 ", " " + table.regions[1], table.sectors[2] + " ", 2.5)]
    got = read_emissions_csv(write(tmp_path / "e.csv", rows, unit=False), table)
    k = got.stressors.index("NH3")
    assert got.units[k] == ""
    expected = np.zeros(R * N)
    expected[1 * N + 2] = 2.5
    np.testing.assert_array_equal(np.asarray(got.F[k]), expected)
    # a replaced row without a unit column keeps the table's unit
    got = read_emissions_csv(write(tmp_path / "f.csv", [("SO2", table.regions[0], "01", 1.0)], unit=False), table)
    assert got.units == ("Mt", "kt")


def test_unit_mismatch_is_an_error(table, tmp_path):
    path = write(tmp_path / "e.csv", [("CO2", table.regions[0], "01", 1.0, "kt")])
    with pytest.raises(ValueError, match=r"'CO2' is in 'kt' in the CSV but in 'Mt'.*convert"):
        read_emissions_csv(path, table)
    path = write(tmp_path / "f.csv", [("CH4", table.regions[0], "01", 1.0, "kt"), ("CH4", table.regions[1], "01", 1.0, "t")])
    with pytest.raises(ValueError, match=r"'CH4' has several units \['kt', 't'\]"):
        read_emissions_csv(path, table)


@pytest.mark.parametrize(("rows", "match"), [
    ([("CO2", "Nowhere", "01", 1.0, "Mt")], r"region labels \['Nowhere'\] are not in the table"),
    ([("CO2", "r0", "1", 1.0, "Mt")], r"sector labels \['1'\] are not in the table"),
    ([("CO2", "r0", "01", 1.0, "Mt"), ("CO2", "r0", "01", 2.0, "Mt")], "1 duplicated .*sum them first"),
    ([("CO2", "r0", "01", "lots", "Mt")], r"non-numeric.*'lots'.*row 2: CO2, r0, 01"),
    ([("CO2", "r0", "01", 1.0, "Mt"), ("CO2", "r1", "01", None, "Mt")], r"non-numeric.*row 3"),
    ([("CO2", "r0", "01", float("inf"), "Mt")], "infinite"),
])  # fmt: skip
def test_bad_rows(table, tmp_path, rows, match):
    assert table.regions[:2] == ("r0", "r1")
    with pytest.raises(ValueError, match=match) as err:
        read_emissions_csv(write(tmp_path / "bad.csv", rows), table)
    assert "bad.csv" in str(err.value)


def test_bad_files(table, tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.csv does not exist.*stressor, region, sector, value"):
        read_emissions_csv(tmp_path / "absent.csv", table)
    pd.DataFrame({"stressor": ["CO2"], "region": ["r0"], "amount": [1.0]}).to_csv(tmp_path / "cols.csv", index=False)
    with pytest.raises(ValueError, match=r"missing \['sector', 'value'\]"):
        read_emissions_csv(tmp_path / "cols.csv", table)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_emissions_csv(tmp_path / "empty.csv", table)


def test_emissions_in_a_zero_output_sector_warn(tmp_path):
    m = random_mrio(2, 2, 1, 1, seed=1, structure="uniform", density=1.0)
    Z, Y = np.array(m.Z), np.array(m.Y)
    Z[1, :], Z[:, 1], Y[1, :] = 0.0, 0.0, 0.0  # region-sector 1 produces nothing
    m = diffmrio.MRIO.from_arrays(Z, Y, np.zeros((1, 4)), regions=m.regions, sectors=m.sectors,
                                  categories=m.categories, stressors=("CO2",), validate="off")  # fmt: skip
    path = write(tmp_path / "e.csv", [("CH4", m.regions[0], m.sectors[1], 3.0, "kt")])
    with pytest.warns(diffmrio.MRIOWarning, match="zero gross output"):
        read_emissions_csv(path, m)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_emissions_csv(write(tmp_path / "f.csv", [("CH4", m.regions[0], m.sectors[0], 3.0, "kt")]), m)
