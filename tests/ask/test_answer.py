"""Answers over hand-made rows: which rows, the numbers, and the sentences."""

import math

import pytest

from s2m_geo.ask.answer import answer, format_area, format_distance
from s2m_geo.ask.parse import parse_question
from s2m_geo.classes import load_class_table

TABLE = load_class_table()
# class_id, direction, quantity, area_m2, distance_m
_ROWS = [
    (1, "northeast", "a few", 1200.0, 900.0),
    (1, "northeast", "a single", 150.5, 1500.0),
    (1, "north", "several", 2100.0, 2500.0),
    (1, "center", "a few", 400.0, 40.0),
    (2, "northeast", "a few", 700.0, 1000.0),
    (3, "southwest", "multiple", 25000.0, 3100.0),
    (4, "west", "multiple", 1_500_000.0, 5000.0),
    (6, "center", "a single", 90.0, math.nan),
]
ROWS = [
    {
        "class_id": cid,
        "category": TABLE[cid].category,
        "change_type": TABLE[cid].change_type,
        "quantity": qty,
        "direction": d,
        "area_m2": a,
        "distance_m": dist,
        "description": f"row {i}",
    }
    for i, (cid, d, qty, a, dist) in enumerate(_ROWS)
]


def ans(text):
    return answer(parse_question(text, TABLE), ROWS, TABLE)


def test_count_with_direction_and_the_s2m_sentence():
    a = ans("How many destroyed buildings are in the north-east?")
    assert a.rows == (0, 1) and a.count == 2 and a.area_m2 == pytest.approx(1350.5)
    assert a.sentence == "There are 2 destroyed buildings in the northeast region, 1,350 m² in all."


def test_count_of_one_and_of_none():
    assert ans("how many new greenhouses in the middle").sentence == (
        "There is 1 newly built greenhouse in the center of the image, 90 m²."
    )
    a = ans("how many destroyed greenhouses are in the south?")
    assert (a.count, a.area_m2, a.rows) == (0, 0.0, ())
    assert a.sentence == "There are no destroyed greenhouses in the south region."


def test_category_alone_spans_change_types_and_synonyms_match_the_same_rows():
    a = ans("how many houses in the northeast")
    assert a.rows == (0, 1, 4)
    assert a.sentence == "There are 3 buildings in the northeast region, 2,050 m² in all."
    assert ans("how many razed homes in the NE").rows == ans("destroyed buildings north east").rows


def test_area_in_m2_ha_and_km2():
    assert ans("how much area of destroyed buildings?").area_m2 == pytest.approx(1200 + 150.5 + 2100 + 400)
    assert ans("how much area of destroyed buildings?").sentence == (
        "Destroyed buildings cover 3,850 m² in all (4 polygons)."
    )
    assert (
        ans("total area of new refugee camps").sentence
        == "Newly established refugee camps cover 2.5 ha in all (1 polygon)."
    )
    assert ans("how much farmland was destroyed").sentence == (
        "Destroyed agricultural fields cover 1.5 km² in all (1 polygon)."
    )
    assert format_area(9999.4) == "9,999 m²" and format_area(10_000) == "1 ha" and format_area(2.5e6) == "2.5 km²"
    assert format_area(12, "px") == "12 px"
    assert format_distance(999) == "999 m" and format_distance(2500) == "2.5 km" and format_distance(1234) == "1.23 km"


def test_where_breaks_down_by_direction_most_first():
    a = ans("where are the destroyed buildings?")
    assert a.by_direction == (("northeast", 2, 1350.5), ("north", 1, 2100.0), ("center", 1, 400.0))
    assert a.sentence == (
        "There are 4 destroyed buildings: 2 in the northeast region (1,350 m²), 1 in the north region "
        "(2,100 m²) and 1 in the center of the image (400 m²)."
    )


def test_area_and_distance_limits():
    assert ans("destroyed buildings larger than 1000 m2").rows == (0, 2)
    assert ans("destroyed buildings of at least 1200 m2").rows == (0, 2)
    assert ans("destroyed buildings smaller than 0.04 ha").rows == (1,)  # 400 m² is not < 400 m²
    a = ans("how many destroyed buildings within 1 km of the centre")
    assert a.rows == (0, 3)
    assert a.sentence == "There are 2 destroyed buildings within 1 km of the centre, 1,600 m² in all."
    assert ans("changes beyond 3 km").rows == (5, 6)
    assert ans("how many new greenhouses within 10 km").count == 0  # no distance: never within


def test_quantity_words_select_by_the_quantity_field():
    a = ans("are there a few destroyed buildings in the northeast?")
    assert a.rows == (0,)
    assert a.sentence == "There is 1 region of a few destroyed buildings in the northeast region, 1,200 m²."
    a = ans("a single destroyed building")
    assert a.sentence == "There is 1 region of a single destroyed building, 150 m²."


def test_largest_smallest_and_which():
    a = ans("the largest destroyed building")
    assert a.rows == (2,)
    assert a.sentence == "The largest destroyed building is 2,100 m², in the north region, 2.5 km from the centre."
    a = ans("the 2 smallest changes")
    assert a.rows == (7, 1)
    assert a.sentence == "The 2 smallest change regions are 90 m² and 150 m²."
    assert a.lines[0] == "8: newly built greenhouse, 90 m², in the center of the image -- row 7"
    a = ans("which buildings are in the northeast?")
    assert a.rows == (0, 1, 4) and len(a.lines) == 3
    assert a.lines[2].startswith("5: newly built building, 700 m², in the northeast region, 1 km from the centre")
    assert ans("how much area do the 2 largest destroyed buildings cover").area_m2 == pytest.approx(3300.0)


def test_rows_may_name_themselves():
    rows = [dict(r, fid=100 + i) for i, r in enumerate(ROWS)]
    a = answer(parse_question("the largest refugee camp", TABLE), rows, TABLE)
    assert a.lines[0].startswith("105: newly established refugee camp, 2.5 ha, in the southwest region")
