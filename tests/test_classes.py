import pytest
import yaml

from s2m_geo.classes import class_table_from_dict, load_class_table, packaged_class_tables
from s2m_geo.errors import InputError


def _table():
    return load_class_table("gaza_change").to_dict()


def test_default_table_matches_design():
    t = load_class_table()
    assert t.name == "gaza_change"
    assert [c.id for c in t] == list(range(7))
    assert t.num_classes == 7
    assert t[0].name == "no_change"
    got = [(c.category, c.change_type) for c in t.change_classes]
    assert got == [
        ("building", "destroyed"),
        ("building", "newly built"),
        ("refugee camp", "newly established"),
        ("agricultural land", "destroyed"),
        ("greenhouse", "destroyed"),
        ("greenhouse", "newly built"),
    ]
    assert t.reference_gsd_m == 0.5
    assert t[1].rgb == (0xE3, 0x1A, 0x1C)
    assert t.colormap()[1] == (0xE3, 0x1A, 0x1C, 255)
    assert t[4].plural_noun == "agricultural fields"
    assert t[3].plural_noun == "refugee camps"
    assert "gaza_change" in packaged_class_tables()


def test_round_trip_through_dict():
    t = load_class_table()
    assert class_table_from_dict(t.to_dict()) == t


def test_synonyms_are_read_normalised_and_kept_through_a_dict():
    t = load_class_table()
    assert t.synonyms_of("building") == ("house", "home", "structure")
    assert "new" in t.synonyms_of("newly built") and "new" in t.synonyms_of("newly established")
    assert t.synonyms_of("none") == ()
    assert class_table_from_dict(t.to_dict()).synonyms == t.synonyms
    d = _table()
    d["synonyms"] = {"destroyed": ["  Razed   To The Ground "]}
    assert class_table_from_dict(d).synonyms == (("destroyed", ("razed to the ground",)),)
    d.pop("synonyms")
    bare = class_table_from_dict(d)
    assert bare.synonyms == () and "synonyms" not in bare.to_dict()
    assert bare == t  # words for questions do not make another table
    assert t.categories == ("building", "refugee camp", "agricultural land", "greenhouse")
    assert t.change_types == ("destroyed", "newly built", "newly established")


def test_load_from_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(_table()))
    assert load_class_table(path).num_classes == 7


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda d: d["classes"].append(dict(d["classes"][1])), "duplicate id 1"),
        (lambda d: d["classes"].pop(0), "no class with id 0"),
        (lambda d: d["classes"][2].update(shape="square"), "unknown key(s) ['shape']"),
        (lambda d: d.update(colour="red"), "unknown key(s) ['colour']"),
        (lambda d: d["classes"][1].update(color="red"), "color must look like '#rrggbb'"),
        (lambda d: d["classes"][1].update(color="#12345"), "color must look like '#rrggbb'"),
        (lambda d: d["classes"][1].update(id=9), "without gaps"),
        (lambda d: d["classes"][1].pop("category"), "lacks key(s) ['category']"),
        (lambda d: d["classes"][1].update(id="one"), "id must be an integer"),
        (lambda d: d.update(reference_gsd_m=-1), "reference_gsd_m"),
        (lambda d: d.update(classes=[]), "non-empty list"),
        (lambda d: d.update(synonyms=["house"]), "'synonyms' must map"),
        (lambda d: d.update(synonyms={"tank": ["panzer"]}), "synonyms of 'tank': not a category or change type"),
        (lambda d: d.update(synonyms={"building": "house"}), "must be a list of non-empty strings"),
        (lambda d: d.update(synonyms={"building": ["greenhouse"]}), "'greenhouse' of 'building' is already"),
        (lambda d: d.update(synonyms={"building": ["Agricultural  Fields"]}), "is already a category"),
        (
            lambda d: d.update(synonyms={"building": ["new"], "newly built": ["new"]}),
            "stands for both a category and a change type",
        ),
        # names become legend labels, field names and report cells: one line of text
        (lambda d: d["classes"][1].update(name="a\nb"), "classes[1].name 'a\\nb' holds the control character '\\n'"),
        (lambda d: d["classes"][2].update(category="x\ty"), "classes[2].category"),
        (lambda d: d["classes"][1].update(change_type="gone\x00"), "classes[1].change_type"),
        (lambda d: d["classes"][1].update(noun="house\u2028"), "classes[1].noun"),
        (lambda d: d.update(name="gaza\rchange"), "name 'gaza\\rchange' holds"),
        (lambda d: d.update(synonyms={"building": ["ho\x1bme"]}), "synonym of 'building'"),
    ],
)
def test_bad_tables_are_rejected_with_a_clear_message(tmp_path, mutate, needle):
    data = _table()
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as info:
        load_class_table(path)
    msg = str(info.value)
    assert str(path) in msg and needle in msg
    assert "\n" not in msg


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_class_table(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="no such class table"):
        load_class_table("no_such_table")
    bad = tmp_path / "broken.yaml"
    bad.write_text("classes: [\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_class_table(bad)
