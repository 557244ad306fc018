import json
from dataclasses import replace

import pytest

from ehrqa import DataError, read_dataset, read_key, read_xml, write_key, write_xml
from ehrqa.data.archehr import normalise_citations
from helpers import make_case, make_cases


@pytest.fixture
def dataset(tmp_path):
    cases = make_cases()
    write_xml(cases, tmp_path / "archehr-qa.xml")
    write_key(cases, tmp_path / "archehr-qa_key.json")
    return tmp_path, cases


def test_round_trip_gives_equal_cases(dataset):
    path, cases = dataset
    assert read_dataset(path) == cases
    # and again: written files read back identically
    again = path / "again"
    write_xml(read_dataset(path), again / "archehr-qa.xml")
    write_key(read_dataset(path), again / "archehr-qa_key.json")
    assert read_dataset(again) == cases


def test_ids_stay_strings_and_zero_based_numbering_survives(dataset):
    path, _ = dataset
    case = read_dataset(path)[1]
    assert case.sentence_ids[0] == "0"
    assert all(isinstance(s, str) for s in case.sentence_ids)


def test_sentence_text_with_newline_and_unicode_round_trips(tmp_path):
    case = make_case()
    s = replace(case.sentences[0], text="Meds:\nmetoprolol 25 mg BID, 38.5 °C")
    case = replace(case, sentences=(s,) + case.sentences[1:])
    write_xml([case], tmp_path / "archehr-qa.xml")
    assert read_xml(tmp_path / "archehr-qa.xml")[0].sentences[0].text == "Meds:\nmetoprolol 25 mg BID, 38.5 °C"


def test_written_files_have_the_official_shape(dataset):
    path, cases = dataset
    key = json.loads((path / "archehr-qa_key.json").read_text())
    assert isinstance(key, list) and key[0]["case_id"] == "7"
    assert key[0]["answers"][0] == {"sentence_id": "1", "relevance": "essential"}
    assert key[0]["clinician_answer_sentences"][0] == {
        "id": "1",
        "text": "She had a blocked artery.",
        "citations": ["1"],
    }
    xml = (path / "archehr-qa.xml").read_text()
    assert '<sentence id="1" paragraph_id="1" start_char_index="0" length="38">' in xml
    assert '<phrase id="0" start_char_index="40">' in xml


def test_test_release_without_gold_elements(tmp_path):
    (tmp_path / "archehr-qa.xml").write_text(
        "<annotations><case id='121'><patient_narrative> Why?\n </patient_narrative></case></annotations>"
    )
    (case,) = read_dataset(tmp_path)
    assert (
        case.narrative == "Why?" and case.sentences == () and case.relevance is None and case.clinician_question is None
    )


def test_key_alone_gives_gold_and_sentence_ids(dataset):
    path, cases = dataset
    keyed = read_key(path / "archehr-qa_key.json")
    assert [c.id for c in keyed] == ["7", "12"]
    assert keyed[0].essential_ids == cases[0].essential_ids
    assert keyed[0].known_sentence_ids == cases[0].sentence_ids
    assert keyed[0].citation_pairs == {("1", "1")}


@pytest.mark.parametrize(
    "value,expected",
    [
        ("", ()),
        ("2", ("2",)),
        ("2,5", ("2", "5")),
        (" 2, 5 ,", ("2", "5")),
        ("19-22", ("19", "20", "21", "22")),
        (["3", "1"], ("3", "1")),
        ([3, "3"], ("3",)),
        ([], ()),
    ],
)
def test_citations_are_normalised(value, expected):
    assert normalise_citations(value, "x") == expected


def test_mapping_file_is_tolerated(dataset):
    path, cases = dataset
    (path / "archehr-qa_mapping.json").write_text('[{"case_id": "7", "document_id": "d", "document_source": "s"}]')
    assert read_dataset(path) == cases


def test_input_for_keeps_only_each_subtasks_official_input():
    case = make_case()
    st1 = case.input_for(1)
    assert (st1.id, st1.narrative) == (case.id, case.narrative)
    assert st1.clinician_question is None and not st1.question_phrases and not st1.sentences
    for subtask in (2, 3, 4):
        inputs = case.input_for(subtask)
        assert inputs.relevance is None and inputs.answer is None
        assert inputs.clinician_question and inputs.sentences == case.sentences  # ST2-4 input: the XML side
    assert case.input_for(2).answer_sentences is None and case.input_for(3).answer_sentences is None
    assert [a.citations for a in case.input_for(4).answer_sentences] == [None, None]


def _write(tmp_path, xml: str | bytes | None = None, key: str | bytes | None = None):
    good = tmp_path / "good"
    write_xml(make_cases(), good / "archehr-qa.xml")
    write_key(make_cases(), good / "archehr-qa_key.json")
    for name, content in (("archehr-qa.xml", xml), ("archehr-qa_key.json", key)):
        target = tmp_path / name
        if content is None:
            target.write_bytes((good / name).read_bytes())
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    return tmp_path


GOOD_CASE = (
    "<case id='{cid}'><patient_narrative>Why?</patient_narrative>"
    "<note_excerpt_sentences>{s}</note_excerpt_sentences></case>"
)


def _xml(*cases: str) -> str:
    return "<annotations>" + "".join(cases) + "</annotations>"


def _key(entries) -> str:
    return json.dumps(entries)


BAD_FILES = {
    "truncated xml": (
        dict(xml="<annotations><case id='7'><patient_narrative>Why"),
        ["archehr-qa.xml", "not well-formed"],
    ),
    "not xml": (dict(xml="hello"), ["archehr-qa.xml", "not well-formed"]),
    "not utf-8": (dict(xml="<annotations><case id='7'>caf\xe9</case></annotations>".encode("latin-1")), ["not UTF-8"]),
    "empty xml": (dict(xml=""), ["archehr-qa.xml", "empty"]),
    "empty key": (dict(key="  \n"), ["archehr-qa_key.json", "empty"]),
    "case without id": (
        dict(xml=_xml("<case><patient_narrative>Why?</patient_narrative></case>")),
        ["archehr-qa.xml", "case #1", "no id"],
    ),
    "duplicate case ids": (
        dict(xml=_xml(GOOD_CASE.format(cid="7", s=""), GOOD_CASE.format(cid="7", s="")), key="[]"),
        ["case 7", "duplicate case id"],
    ),
    "sentence without id": (
        dict(xml=_xml(GOOD_CASE.format(cid="7", s="<sentence>A.</sentence>")), key="[]"),
        ["case 7", "sentence #1", "no id"],
    ),
    "duplicate sentence ids": (
        dict(xml=_xml(GOOD_CASE.format(cid="7", s="<sentence id='1'>A.</sentence><sentence id='1'>B.</sentence>"))),
        ["case 7", "sentence 1", "duplicate sentence id"],
    ),
    "key not a list": (dict(key='{"case_id": "7"}'), ["archehr-qa_key.json", "JSON list"]),
    "key not json": (dict(key='[{"case_id": "7",'), ["archehr-qa_key.json", "not valid JSON"]),
    "key case missing from xml": (
        dict(key=_key([{"case_id": "99", "answers": []}])),
        ["case(s) 99", "not in archehr-qa.xml"],
    ),
    "citation names unknown sentence": (
        dict(
            key=_key(
                [
                    {
                        "case_id": "7",
                        "answers": [{"sentence_id": "1", "relevance": "essential"}],
                        "clinician_answer_sentences": [{"id": "1", "text": "A.", "citations": ["1", "42"]}],
                    }
                ]
            )
        ),
        ["case 7", "answer sentence 1", "'42'"],
    ),
    "relevance names unknown sentence": (
        dict(key=_key([{"case_id": "7", "answers": [{"sentence_id": "42", "relevance": "essential"}]}])),
        ["case 7", "unknown sentence id '42'"],
    ),
    "empty sentence": (
        dict(xml=_xml(GOOD_CASE.format(cid="7", s="<sentence id='1'>A.</sentence><sentence id='2'> </sentence>"))),
        ["archehr-qa.xml", "case 7", "sentence 2", "empty"],
    ),
    "negative sentence offset": (
        dict(xml=_xml(GOOD_CASE.format(cid="7", s="<sentence id='1' start_char_index='-2'>A.</sentence>"))),
        ["case 7", "sentence 1", "start_char_index is negative: -2"],
    ),
    "misplaced phrase": (
        dict(
            xml=_xml(
                "<case id='7'><patient_narrative>Hello. Why?</patient_narrative><patient_question>"
                "<phrase id='0' start_char_index='0'>Why?</phrase></patient_question></case>"
            ),
            key="[]",
        ),
        ["case 7", "phrase 0", "start_char_index 0 does not point"],
    ),
    "xml case without sentences that the key labels": (
        dict(
            xml=_xml("<case id='7'><patient_narrative>Why?</patient_narrative></case>"),
            key=_key([{"case_id": "7", "answers": [{"sentence_id": "1", "relevance": "essential"}]}]),
        ),
        ["archehr-qa.xml: case 7", "no <note_excerpt_sentences>"],
    ),
    "unknown relevance label": (
        dict(key=_key([{"case_id": "7", "answers": [{"sentence_id": "1", "relevance": "maybe"}]}])),
        ["case 7", "sentence 1", "unknown relevance label 'maybe'"],
    ),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_files_raise_one_short_data_error(tmp_path, name):
    files, fragments = BAD_FILES[name]
    path = _write(tmp_path, **files)
    with pytest.raises(DataError) as err:
        read_dataset(path)
    message = str(err.value)
    assert "\n" not in message and len(message) < 300
    for fragment in fragments:
        assert fragment in message


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        read_dataset(tmp_path / "nope")
    with pytest.raises(DataError, match="holds neither"):
        read_dataset(tmp_path)


def test_key_alone_where_the_xml_is_needed(dataset):
    path, _ = dataset
    with pytest.raises(DataError, match="archehr-qa.xml is needed") as err:
        read_dataset(key=path / "archehr-qa_key.json")
    assert "None" not in str(err.value)
    assert [c.id for c in read_dataset(key=path / "archehr-qa_key.json", require_xml=False)] == ["7", "12"]


def test_phrase_offsets_may_count_in_the_raw_narrative(tmp_path):
    # some writers count offsets before stripping the pretty-printed element text: accepted too
    (tmp_path / "archehr-qa.xml").write_text(
        "<annotations><case id='7'><patient_narrative>\n  Hi. Why?\n</patient_narrative><patient_question>"
        "<phrase id='0' start_char_index='7'>Why?</phrase></patient_question></case></annotations>"
    )
    assert read_dataset(tmp_path)[0].question_phrases[0].start == 7
