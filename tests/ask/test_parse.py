"""The question reader: each word class, plurals, synonyms, numbers and units, refusals."""

import pytest

from s2m_geo.ask.parse import Condition, known_words, parse_question
from s2m_geo.classes import class_table_from_dict, load_class_table
from s2m_geo.errors import InputError

GAZA = load_class_table("gaza_change")
BINARY = load_class_table("binary_change")


def ask(text, table=GAZA):
    return parse_question(text, table)


def refused(text, table=GAZA):
    with pytest.raises(InputError) as info:
        parse_question(text, table)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f'"{text}": ')
    return msg


# --- categories, change types, plurals, synonyms ----------------------------------------------------


@pytest.mark.parametrize(
    "text, ids",
    [
        ("how many buildings", (1, 2)),
        ("how many building", (1, 2)),
        ("how many destroyed buildings", (1,)),
        ("how many newly built buildings", (2,)),
        ("how many refugee camps", (3,)),
        ("how many agricultural fields", (4,)),  # the table's noun and plural
        ("how many agricultural field", (4,)),
        ("how many agricultural land", (4,)),  # the category itself
        ("how many greenhouses", (5, 6)),
        ("how many destroyed things", (1, 4, 5)),
        ("how many changes", (1, 2, 3, 4, 5, 6)),
        ("how many", (1, 2, 3, 4, 5, 6)),
        ("how many newly established changes", (3,)),
    ],
)
def test_categories_change_types_and_plurals(text, ids):
    assert ask(text).class_ids == ids


@pytest.mark.parametrize(
    "text, ids",
    [
        ("how many houses", (1, 2)),
        ("how many homes were razed", (1,)),
        ("how many demolished houses", (1,)),
        ("how many flattened structures", (1,)),
        ("how many new houses", (2,)),  # "new": newly built or established; houses tell
        ("how many new camps", (3,)),
        ("how many new tent camps", (3,)),
        ("how many constructed glasshouses", (6,)),
        ("how much destroyed farmland", (4,)),
        ("how many ruined polytunnels", (5,)),
    ],
)
def test_synonyms_of_the_table(text, ids):
    assert ask(text).class_ids == ids


def test_synonyms_come_from_the_table_not_the_code():
    d = GAZA.to_dict()
    d["synonyms"] = {"building": ["dwelling"]}
    table = class_table_from_dict(d)
    assert parse_question("how many dwellings", table).class_ids == (1, 2)
    assert "'houses'" in refused("how many houses", table)


def test_a_word_with_two_meanings_is_refused_unless_the_question_tells_them_apart():
    msg = refused("how many new things are there?")
    assert "'new' can mean newly built or newly established" in msg and "say which" in msg
    assert ask("how many new greenhouses").class_ids == (6,)


def test_several_categories_and_change_types_at_once():
    assert ask("how many destroyed buildings and greenhouses").class_ids == (1, 5)
    assert ask("how many destroyed or newly built greenhouses").class_ids == (5, 6)
    assert "one pair at a time" in refused("destroyed buildings and newly built greenhouses")


def test_a_class_the_table_does_not_have_is_refused():
    msg = refused("how many destroyed refugee camps")
    assert "no class of table 'gaza_change' is a 'destroyed refugee camps'" in msg
    assert "destroyed building" in msg  # it lists the classes


def test_binary_table_words():
    assert ask("how many changed areas", BINARY).class_ids == (1,)
    assert ask("how much altered land", BINARY).intent == "area"
    assert "'buildings'" in refused("how many buildings", BINARY)


# --- directions, quantities, intents -------------------------------------------------------------------


@pytest.mark.parametrize(
    "word, direction",
    [
        ("north", "north"),
        ("northern", "north"),
        ("north-east", "northeast"),
        ("north east", "northeast"),
        ("North-Eastern", "northeast"),
        ("northeast", "northeast"),
        ("NE", "northeast"),
        ("south-west", "southwest"),
        ("southeast", "southeast"),
        ("western", "west"),
        ("east", "east"),
        ("northwest", "northwest"),
        ("centre", "center"),
        ("center", "center"),
        ("middle", "center"),
        ("central part", "center"),
    ],
)
def test_directions(word, direction):
    assert ask(f"how many buildings are in the {word}?").directions == (direction,)


def test_several_directions_and_direction_from_the_centre():
    assert ask("buildings in the north or the east").directions == ("north", "east")
    assert ask("how many buildings north of the centre").directions == ("north",)


@pytest.mark.parametrize("q", ["a single", "a few", "several", "multiple"])
def test_quantity_words_filter_the_quantity_field(q):
    assert ask(f"are there {q} destroyed buildings?").quantities == (q,)


def test_a_alone_is_an_article():
    assert ask("is there a destroyed building in the north?").quantities == ()


@pytest.mark.parametrize(
    "text, intent",
    [
        ("how many destroyed buildings?", "count"),
        ("are there destroyed buildings?", "count"),
        ("number of destroyed buildings", "count"),
        ("how much area of destroyed buildings?", "area"),
        ("how much farmland was destroyed?", "area"),
        ("what is the total area of new greenhouses?", "area"),
        ("where are the destroyed buildings?", "where"),
        ("in which direction are the refugee camps?", "where"),
        ("which refugee camps are in the north?", "which"),
        ("list the new greenhouses", "which"),
        ("the largest destroyed building", "which"),
        ("how many buildings which are larger than 500 m2", "count"),  # "which" as a relative pronoun
    ],
)
def test_intents(text, intent):
    assert ask(text).intent == intent


def test_two_questions_at_once_are_refused():
    assert "asks for count and where at once" in refused("how many destroyed buildings and where")


def test_largest_smallest_and_how_many_of_them():
    q = ask("the largest destroyed building")
    assert (q.rank, q.limit) == ("largest", 1)
    q = ask("the 3 biggest new greenhouses")
    assert (q.rank, q.limit, q.class_ids) == ("largest", 3, (6,))
    q = ask("how much area do the 10 smallest camps cover?")
    assert (q.intent, q.rank, q.limit) == ("area", "smallest", 10)
    assert "asks for largest and smallest" in refused("largest and smallest buildings")


# --- numbers and units -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "limit, condition",
    [
        ("more than 500 m2", Condition("area_m2", ">", 500.0)),
        ("more than 500 m²", Condition("area_m2", ">", 500.0)),
        ("more than 500m²", Condition("area_m2", ">", 500.0)),
        ("more than 500 m^2", Condition("area_m2", ">", 500.0)),
        ("more than 500 sq m", Condition("area_m2", ">", 500.0)),
        ("larger than 500 square metres", Condition("area_m2", ">", 500.0)),
        ("larger than 1,500 m2", Condition("area_m2", ">", 1500.0)),
        ("over 0.5 ha", Condition("area_m2", ">", 5000.0)),
        ("at least 2 hectares", Condition("area_m2", ">=", 20000.0)),
        ("less than 1 km2", Condition("area_m2", "<", 1e6)),
        ("smaller than 0.25 km²", Condition("area_m2", "<", 250000.0)),
        ("at most 80 m2", Condition("area_m2", "<=", 80.0)),
        ("> 500 m2", Condition("area_m2", ">", 500.0)),
        ("within 2 km of the centre", Condition("distance_m", "<=", 2000.0)),
        ("within 2km", Condition("distance_m", "<=", 2000.0)),
        ("within 800 m of the center", Condition("distance_m", "<=", 800.0)),
        ("within 1.5 kilometres from the centre", Condition("distance_m", "<=", 1500.0)),
        ("more than 2 km from the centre", Condition("distance_m", ">", 2000.0)),
        ("beyond 300 metres", Condition("distance_m", ">", 300.0)),
        ("closer than 100 m to the centre", Condition("distance_m", "<", 100.0)),
    ],
)
def test_limits_with_units(limit, condition):
    q = ask(f"how many destroyed buildings {limit}?")
    assert q.conditions == (condition,)
    assert q.directions == ()  # "of the centre" is where a distance is measured from, not a direction


def test_limits_combine():
    q = ask("the 2 largest destroyed houses over 200 m2 within 1 km of the centre in the south")
    assert q.conditions == (Condition("area_m2", ">", 200.0), Condition("distance_m", "<=", 1000.0))
    assert q.directions == ("south",) and q.limit == 2


@pytest.mark.parametrize(
    "text, needle",
    [
        ("buildings more than 500", "'more than 500' needs a unit"),
        ("buildings more than big", "'more than' needs a number"),
        ("buildings more than 500 m", "is a length; say 'of the centre'"),
        ("buildings within 2 ha of the centre", "is an area, not a distance"),
        ("buildings 500 m2", "the number 500 needs a limit and a unit"),
        ("buildings of 2 km", "the number 2 needs"),
        ("buildings m2", "'m2' without a limit"),
    ],
)
def test_numbers_without_their_words_are_refused(text, needle):
    assert needle in refused(text)


# --- refusals ------------------------------------------------------------------------------------------


def test_an_unknown_word_is_refused_with_the_known_words():
    msg = refused("how many tanks were destroyed near the port?")
    assert "unknown word(s) 'tanks', 'near', 'port'" in msg
    assert known_words(GAZA) in msg
    for word in ("house(s)", "razed", "newly built", "northeast", "centre", "a few", "how many", "within"):
        assert word in msg


def test_an_empty_question_is_refused():
    assert "empty question" in refused("  ?? ")


def test_words_without_meaning_and_punctuation_are_fine():
    q = ask("How many destroyed buildings are there, in total, in the North?!")
    assert (q.intent, q.class_ids, q.directions) == ("count", (1,), ("north",))
