"""Every sentence describe can produce reads back as the quadruple it was made from."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2m_geo.ask.parse import parse_question
from s2m_geo.classes import load_class_table, packaged_class_tables
from s2m_geo.describe.rules import DIRECTIONS, QUANTITIES, Quadruple
from s2m_geo.describe.templates import NUM_TEMPLATES, sentence

TABLES = {name: load_class_table(name) for name in packaged_class_tables()}


def _cases(table):
    for cls, quantity, direction, template in itertools.product(
        table.change_classes, QUANTITIES, DIRECTIONS, range(NUM_TEMPLATES)
    ):
        q = Quadruple(cls.id, cls.category, cls.change_type, quantity, direction, 1)
        yield q, sentence(q, table, template=template)


def _reads_back(text, q, table):
    query = parse_question(text, table)
    assert query.quadruple() == (q.direction, q.category, q.change_type, q.quantity), text
    assert query.class_ids == (q.class_id,), text


def test_both_shipped_tables_are_covered():
    assert {"gaza_change", "binary_change"} <= set(TABLES)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_sentence_of_every_template_quadruple_and_direction_reads_back(name):
    table = TABLES[name]
    cases = list(_cases(table))
    assert len(cases) == len(table.change_classes) * 4 * 9 * NUM_TEMPLATES
    assert len({s for _, s in cases}) == len(cases)  # all different sentences
    for q, text in cases:
        _reads_back(text, q, table)


@st.composite
def _spoken(draw):
    """A describe sentence as a person might paste it: any table, class, quantity, direction
    and template, in other letter case, with other spacing and punctuation."""
    table = TABLES[draw(st.sampled_from(sorted(TABLES)))]
    cls = draw(st.sampled_from(table.change_classes))
    q = Quadruple(
        cls.id, cls.category, cls.change_type, draw(st.sampled_from(QUANTITIES)), draw(st.sampled_from(DIRECTIONS)), 1
    )
    text = sentence(q, table, template=draw(st.integers(0, NUM_TEMPLATES - 1)))
    words = text.split()
    cases = draw(
        st.lists(st.sampled_from(["lower", "upper", "title", "same"]), min_size=len(words), max_size=len(words))
    )
    spaces = draw(st.lists(st.sampled_from([" ", "  ", "\t", " \n "]), min_size=len(words), max_size=len(words)))
    words = [getattr(w, c)() if c != "same" else w for w, c in zip(words, cases)]
    text = "".join(s + w for s, w in zip(spaces, words)) + draw(st.sampled_from(["", "?", " !", ".."]))
    return table, q, text


@settings(max_examples=300, deadline=None)
@given(_spoken())
def test_describe_sentences_read_back_whatever_their_case_and_spacing(case):
    table, q, text = case
    _reads_back(text, q, table)
