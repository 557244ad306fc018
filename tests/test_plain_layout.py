"""The splitter's rules (see :mod:`ehrqa.data.plain`), one test per layout, on invented discharge notes."""

from __future__ import annotations

import pytest

from ehrqa.data.plain import paragraphs, split_note


def texts(note: str) -> list[str]:
    return [s.text for s in split_note(note)]


def test_header_alone_on_its_line_is_a_sentence_of_its_own():
    note = (
        "HISTORY OF PRESENT ILLNESS\n"
        "Mr. Brown is a 72 y.o. M with cough.\n"
        "\n"
        "Hospital Course\n"
        "He was treated with ceftriaxone.\n"
        "\n"
        "Discharge Medications:\n"
        "Amoxicillin 500 mg three times daily.\n"
        "\n"
        "DISCHARGE CONDITION:\n"
        "Stable."
    )
    assert texts(note) == [
        "HISTORY OF PRESENT ILLNESS",
        "Mr. Brown is a 72 y.o. M with cough.",
        "Hospital Course",
        "He was treated with ceftriaxone.",
        "Discharge Medications:",
        "Amoxicillin 500 mg three times daily.",
        "DISCHARGE CONDITION:",
        "Stable.",
    ]


@pytest.mark.parametrize(
    "line, first",
    [
        ("HPI: 72 y.o. M w/ CAD s/p PCI (2019), here with fever. He is short of breath.", True),
        ("PMH: COPD, HTN, HLD.", False),
        ("Admit Dx: community-acquired pneumonia.", False),
        ("HOSPITAL COURSE: Seen by Dr. Lee on HD#2. He improved.", True),
        ("Allergies: penicillin", False),
    ],
)
def test_a_label_with_content_on_its_line_stays_with_its_content(line, first):
    note = f"He was seen in clinic.\n{line}\nWrapped prose continues here."
    got = texts(note)
    assert got[0] == "He was seen in clinic."
    label = line.split(":")[0] + ":"
    assert got[1].startswith(label) and len(got[1]) > len(label)  # never the label alone
    if first:  # the label stays in the first sentence of the line only
        assert not any(t.startswith(label) for t in got[2:])
    assert not any(t == label for t in got)


def test_all_caps_and_title_case_labels_with_content_follow_the_same_rule():
    note = "PMH: COPD on 2 L home O2.\nPmh: COPD on 2 L home O2.\nPAST MEDICAL HISTORY: COPD on 2 L home O2."
    assert texts(note) == [
        "PMH: COPD on 2 L home O2.",
        "Pmh: COPD on 2 L home O2.",
        "PAST MEDICAL HISTORY: COPD on 2 L home O2.",
    ]


def test_hpi_with_years_old_is_one_sentence():
    note = "HPI: 72 y.o. M w/ CAD s/p PCI (2019), admitted with 3 days of fever. CXR showed RLL consolidation."
    assert texts(note) == [
        "HPI: 72 y.o. M w/ CAD s/p PCI (2019), admitted with 3 days of fever.",
        "CXR showed RLL consolidation.",
    ]


@pytest.mark.parametrize("marker", ["1.", "1)", "(1)", "-", "*", "•"])
def test_list_items_start_a_sentence_and_keep_their_marker(marker):
    second = marker.replace("1", "2")
    note = (
        "Discharge Medications:\n"
        f"{marker} Amoxicillin-clavulanate 875 mg p.o. b.i.d. x 5 days.\n"
        f"{second} Albuterol 2 puffs q4h PRN\n"
        "  for wheezing."
    )
    assert texts(note) == [
        "Discharge Medications:",
        f"{marker} Amoxicillin-clavulanate 875 mg p.o. b.i.d. x 5 days.",
        f"{second} Albuterol 2 puffs q4h PRN\n  for wheezing.",
    ]


def test_a_numbered_item_is_never_split_from_its_number():
    note = "1. Amoxicillin 500 mg.\n2. Lisinopril 10 mg daily. Hold for SBP < 100.\n10. Aspirin 81 mg."
    got = texts(note)
    assert got == [
        "1. Amoxicillin 500 mg.",
        "2. Lisinopril 10 mg daily.",
        "Hold for SBP < 100.",
        "10. Aspirin 81 mg.",
    ]
    assert not any(t.rstrip(".").isdigit() for t in got)


def test_an_inline_numbered_list_after_a_label_gives_one_sentence_per_item():
    note = "DISCHARGE DIAGNOSES: 1. Pneumonia 2. COPD exacerbation 3. Hypertension\n\nAdmitted on day 2. He improved."
    assert texts(note) == [
        "DISCHARGE DIAGNOSES: 1. Pneumonia",
        "2. COPD exacerbation",
        "3. Hypertension",
        "Admitted on day 2.",
        "He improved.",
    ]


def test_problem_list_lines_after_prose_are_sentences_of_their_own():
    note = (
        "Assessment and Plan: 72M with CAP, improving.\n"
        "# HTN: Lisinopril 10 mg daily, continue.\n"
        "# OA: Knee pain, continue acetaminophen. Avoid NSAIDs.\n"
        "#CAP - amoxicillin-clavulanate for 5 more days.\n"
        "#4 AKI: resolved with fluids."
    )
    assert texts(note) == [
        "Assessment and Plan: 72M with CAP, improving.",
        "# HTN: Lisinopril 10 mg daily, continue.",
        "# OA: Knee pain, continue acetaminophen.",
        "Avoid NSAIDs.",
        "#CAP - amoxicillin-clavulanate for 5 more days.",
        "#4 AKI: resolved with fluids.",
    ]


def test_clinical_abbreviations_decimals_and_vitals():
    note = (
        "72 y.o. F seen by Dr. Patel. Given 650 mg p.o. q6h p.r.n. She felt better. "
        "Metoprolol 25 mg b.i.d. Started today. Take 2 tabs p.o. 2 hours before meals. "
        "Cr 1.2, down from 2.5. BP 150/90. HR 88. Temp 38.5 C. SpO2 91% on RA. RR: 18. "
        "H. pylori negative. Potassium 3.4 vs. 4.1 e.g. after repletion."
    )
    assert texts(note) == [
        "72 y.o. F seen by Dr. Patel.",
        "Given 650 mg p.o. q6h p.r.n.",
        "She felt better.",
        "Metoprolol 25 mg b.i.d.",
        "Started today.",
        "Take 2 tabs p.o. 2 hours before meals.",
        "Cr 1.2, down from 2.5.",
        "BP 150/90.",
        "HR 88.",
        "Temp 38.5 C.",
        "SpO2 91% on RA.",
        "RR: 18.",
        "H. pylori negative.",
        "Potassium 3.4 vs. 4.1 e.g. after repletion.",
    ]


def test_wrapped_prose_continues_and_offsets_stay_true():
    note = (
        "BRIEF HOSPITAL COURSE:\n"
        "She was admitted with a COPD\n"
        "exacerbation and treated with prednisone. She improved.\n"
        "# COPD: continue tiotropium.\n"
        "\n"
        "Followup Instructions: PCP in 1 week."
    )
    sentences = split_note(note)
    assert [s.text for s in sentences] == [
        "BRIEF HOSPITAL COURSE:",
        "She was admitted with a COPD\nexacerbation and treated with prednisone.",
        "She improved.",
        "# COPD: continue tiotropium.",
        "Followup Instructions: PCP in 1 week.",
    ]
    paras = paragraphs(note)
    for s in sentences:
        assert paras[int(s.paragraph_id)][s.start : s.start + s.length] == s.text


def test_a_label_in_the_middle_of_a_line_is_ordinary_text():
    note = "She was given a nicotine patch 21 mg/24 h. Discharge meds:\naspirin 81 mg daily. Follow up in 2 weeks."
    assert texts(note) == [
        "She was given a nicotine patch 21 mg/24 h.",
        "Discharge meds:\naspirin 81 mg daily.",
        "Follow up in 2 weeks.",
    ]
