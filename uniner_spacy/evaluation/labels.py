"""Raw data-set tags → the natural-language type names a model is asked about.

UniNER asks `What describes {type} in the text?`, so every tag must become words.
One table holds every data set's renames; anything not in it goes through
`generic_label` (lower-case, `_`/`-` → space). Formats whose files already carry
natural names (IE_INSTRUCTIONS JSON, the UniNER conversations, SLIMER) keep
them unchanged: those are the names the published figures were measured with.
A user `label_map` is applied last and wins over everything.
"""
from __future__ import annotations

import re
from typing import Callable, Dict, List, Mapping, Optional

from ..errors import ConfigError

# Shared by several data sets (CoNLL-style 4-type tag sets). `MISC` → `else`
# follows the IE_INSTRUCTIONS CoNLL-2003 and CrossNER files (`misc` → `else`).
_CONLL: Dict[str, str] = {
    "PER": "person",
    "LOC": "location",
    "ORG": "organization",
    "MISC": "else",
}
_OPEN_TYPE_WORDS: Dict[str, str] = {
    # CrossNER BIO tags, renamed exactly as in the IE_INSTRUCTIONS CrossNER files.
    "misc": "else",
    "organisation": "organization",
    "programlang": "program language",
    "academicjournal": "academic journal",
    "astronomicalobject": "astronomical object",
    "chemicalcompound": "chemical compound",
    "chemicalelement": "chemical element",
    "literarygenre": "literary genre",
    "musicalartist": "musical artist",
    "musicalinstrument": "musical instrument",
    "musicgenre": "music genre",
    "politicalparty": "political party",
}

# data set (folder name) → {raw tag: natural name}. Keys are matched exactly
# first, then case-insensitively.
_CONLL3 = {k: v for k, v in _CONLL.items() if k != "MISC"}

LABEL_TABLE: Dict[str, Dict[str, str]] = {
    "conll2003": _CONLL,
    "wikineural_en": _CONLL,
    "wikigold": _CONLL,
    "sec_filings": _CONLL,
    "wikiann_en": _CONLL3,
    "finer_ord": _CONLL3,
    "broad_twitter": _CONLL3,
    "crossner": _OPEN_TYPE_WORDS,  # every crossner_* folder, see `_table_for`
    "anatem": {"Anatomy": "anatomy"},
    "bc2gm": {"GENE": "gene"},
    "bc5cdr": {"Chemical": "chemical", "Disease": "disease"},
    "ncbi": {"Disease": "disease"},
    "harveyner": {"POINT": "point", "AREA": "area", "ROAD": "road", "RIVER": "river"},
    "genia": {"DNA": "DNA", "RNA": "RNA", "protein": "protein",
              "cell_line": "cell line", "cell_type": "cell type"},
    "jnlpba": {"DNA": "DNA", "RNA": "RNA", "protein": "protein",
               "cell_line": "cell line", "cell_type": "cell type"},
    # MIT BIO files (tag TAB token); names as in the IE_INSTRUCTIONS MIT files.
    "mit_movie": {"ACTOR": "actor", "CHARACTER": "character", "DIRECTOR": "director",
                  "GENRE": "genre", "PLOT": "plot", "RATING": "rating",
                  "RATINGS_AVERAGE": "average ratings", "REVIEW": "review",
                  "SONG": "song", "TITLE": "title", "TRAILER": "trailer", "YEAR": "year"},
    "mit_restaurant": {"Amenity": "amenity", "Cuisine": "cuisine", "Dish": "dish",
                       "Hours": "hours", "Location": "location", "Price": "price",
                       "Rating": "rating", "Restaurant_Name": "restaurant name"},
    "wnut16": {"geo-loc": "location", "facility": "facility", "movie": "movie",
               "company": "company", "product": "product", "person": "person",
               "other": "other", "sportsteam": "sports team", "musicartist": "music artist",
               "tvshow": "tv show"},
    "wnut17": {"creative-work": "creative work", "corporation": "corporation",
               "group": "group", "location": "location", "person": "person",
               "product": "product"},
    "scierc": {"Generic": "generic", "Task": "task", "Method": "method",
               "Material": "material", "Metric": "metric",
               "OtherScientificTerm": "other scientific term"},
    "re3d": {"DocumentReference": "document reference",
             "MilitaryPlatform": "military platform", "Organisation": "organization"},
    "anem": {"Multi-tissue_structure": "multi-tissue structure"},
    "bionlp11id": {"Organism": "organism", "Regulon-operon": "regulon operon",
                   "Two-component-system": "two-component system"},
    "bionlp13cg": {"Amino_acid": "amino acid", "Gene_or_gene_product": "gene or gene product",
                   "Multi-tissue_structure": "multi-tissue structure",
                   "Simple_chemical": "simple chemical"},
    "bionlp13pc": {"Gene_or_gene_product": "gene or gene product",
                   "Simple_chemical": "simple chemical"},
    # CRAFT tags name the ontology each concept comes from.
    "craft": {"SO": "sequence feature", "GGP": "gene or gene product",
              "Taxon": "taxon", "CHEBI": "chemical entity", "CL": "cell type",
              "GO": "biological process or cellular component"},
    "linnaeus": {"Species": "species"},
    "ex_ptm": {"Protein": "protein"},
    "cyner_mitre": {"Indicator": "indicator", "System": "system", "Malware": "malware",
                    "Organization": "organization", "Vulnerability": "vulnerability"},
    "hipe2022_ajmc_en": {"pers": "person", "work": "work", "scope": "citation scope",
                         "loc": "location", "date": "date", "object": "object"},
    "hipe2022_hipe2020_en": {"pers": "person", "loc": "location", "org": "organization",
                             "prod": "product", "time": "time"},
    "hipe2022_topres19th_en": {"LOC": "location", "BUILDING": "building", "STREET": "street"},
    "musicreconer": {"Artist": "artist", "WoA": "work of art"},
    "presidio_synth": {"PERSON": "person", "STREET_ADDRESS": "street address",
                       "GPE": "geopolitical entity", "ORGANIZATION": "organization",
                       "CREDIT_CARD": "credit card", "DATE_TIME": "date or time", "TITLE": "title",
                       "PHONE_NUMBER": "phone number", "AGE": "age",
                       "NRP": "nationality, religious or political group",
                       "EMAIL_ADDRESS": "email address", "ZIP_CODE": "zip code",
                       "DOMAIN_NAME": "domain name", "IBAN_CODE": "IBAN code",
                       "US_SSN": "US social security number", "IP_ADDRESS": "IP address",
                       "US_DRIVER_LICENSE": "US driver license"},
    "tasteset2": {"FOOD": "food", "QUANTITY": "quantity", "UNIT": "unit", "PROCESS": "process",
                  "PHYSICAL_QUALITY": "physical quality", "COLOR": "color",
                  "TRADE_NAME": "trade name", "TASTE": "taste", "PURPOSE": "purpose",
                  "EXAMPLE": "example", "DIET": "diet", "PART": "part",
                  "POSSIBLE_SUBSTITUTE": "possible substitute", "EXCLUDED": "excluded",
                  "EXCLUSIVE": "exclusive"},
    "textile_gliner_synth": {"Textile Machinery": "textile machinery",
                             "textile machinery": "textile machinery",
                             "Inventor": "inventor", "Time Period": "time period"},
    "multiconer2_en": {
        "AerospaceManufacturer": "aerospace manufacturer", "AnatomicalStructure": "anatomical structure",
        "ArtWork": "artwork", "Artist": "artist", "Athlete": "athlete",
        "CarManufacturer": "car manufacturer", "Cleric": "cleric", "Clothing": "clothing",
        "Disease": "disease", "Drink": "drink", "Facility": "facility", "Food": "food",
        "HumanSettlement": "human settlement", "MedicalProcedure": "medical procedure",
        "Medication/Vaccine": "medication or vaccine", "MusicalGRP": "musical group",
        "MusicalWork": "musical work", "ORG": "organization", "OtherLOC": "other location",
        "OtherPER": "other person", "OtherPROD": "other product", "Politician": "politician",
        "PrivateCorp": "private corporation", "PublicCorp": "public corporation",
        "Scientist": "scientist", "Software": "software", "SportsGRP": "sports group",
        "SportsManager": "sports manager", "Station": "station", "Symptom": "symptom",
        "Vehicle": "vehicle", "VisualWork": "visual work", "WrittenWork": "written work"},
    "stackoverflow_ner": {
        "Algorithm": "algorithm", "Application": "application", "Class_Name": "class name",
        "Code_Block": "code block", "Data_Structure": "data structure", "Data_Type": "data type",
        "Device": "device", "Error_Name": "error name", "File_Name": "file name",
        "File_Type": "file type", "Function_Name": "function name", "HTML_XML_Tag": "HTML or XML tag",
        "Keyboard_IP": "keyboard input", "Language": "programming language", "Library": "library",
        "Library_Class": "library class", "Library_Function": "library function",
        "Library_Variable": "library variable", "Licence": "licence",
        "Operating_System": "operating system", "Organization": "organization",
        "Output_Block": "output block", "User_Interface_Element": "user interface element",
        "User_Name": "user name", "Value": "value", "Variable_Name": "variable name",
        "Version": "version", "Website": "website", "Data_Set_Name": "data set name"},
    # Few-NERD `coarse-fine` tags: the fine part names the type, `-other` the coarse.
    "fewnerd_inter_episodes": {
        "person-other": "person", "building-other": "building", "event-other": "event",
        "product-train": "train", "other-chemicalthing": "chemical", "other-currency": "currency",
        "product-game": "game", "organization-religion": "religious organization",
        "building-library": "library", "location-park": "park", "art-painting": "painting",
        "person-scholar": "scholar", "organization-showorganization": "show organization"},
}


# Few-TK tags are `field-kind` (`NLP-algorithm/tool`): say the field and kind in words.
_FEW_TK_FIELDS = {"AI/ML/DL": "machine learning", "Computer/vision": "computer vision",
                  "Computer/Vision": "computer vision", "NLP": "NLP",
                  "Data/Mining/Information/Retrieval": "data mining or information retrieval",
                  "Statistical/Mathematical": "statistical", "Miscellaneous": "miscellaneous",
                  "Application": "application", "Classification": "classification",
                  "Description": "description", "Descriptor": "descriptor",
                  "Numerical": "numerical", "URL": "URL"}
_FEW_TK_KINDS = {"algorithm/tool": "algorithm or tool", "dataset": "data set", "domain": "domain",
                 "focus": "focus", "technique": "technique", "term": "term", "metrics": "metrics",
                 "material": "material", "result": "result"}
LABEL_TABLE["few_tk"] = {f"{f}-{k}": f"{fw} {kw}" for f, fw in _FEW_TK_FIELDS.items()
                         for k, kw in _FEW_TK_KINDS.items()}

# Data sets whose table above lists every tag: the table is then the label set
# of each of its files, so a type missing from one split is still asked (as a
# negative), and `limit` need not read the whole file to know the label set.
COMPLETE_TABLES = frozenset({
    "conll2003", "wikineural_en", "wikigold", "sec_filings", "wikiann_en", "finer_ord",
    "broad_twitter", "presidio_synth", "tasteset2", "textile_gliner_synth",
    "anatem", "bc2gm", "bc5cdr", "ncbi", "harveyner", "genia", "jnlpba", "mit_movie",
    "mit_restaurant", "wnut16", "wnut17", "scierc", "craft", "linnaeus", "ex_ptm",
    "cyner_mitre", "hipe2022_ajmc_en", "hipe2022_hipe2020_en", "hipe2022_topres19th_en",
    "musicreconer", "multiconer2_en", "stackoverflow_ner",
})

# Files that keep their own names still get these fixes: the IE_INSTRUCTIONS
# CrossNER music file kept `organisation`/`misc` that its labels.json renames.
NAME_FIXES: Dict[str, Dict[str, str]] = {
    "crossner": {"organisation": "organization", "misc": "else"},
}


def dataset_labels(dataset: str) -> List[str]:
    """The full raw tag set of `dataset` where the table knows it, else []."""
    return list(LABEL_TABLE[dataset]) if dataset in COMPLETE_TABLES else []


def generic_label(raw: str) -> str:
    """Fallback: split CamelCase, `_`/`-` → space, lower-case all but acronyms.

    `Restaurant_Name` → `restaurant name`, `OtherScientificTerm` → `other
    scientific term`, `NLP-focus` → `NLP focus`; an all-upper tag (`PERSON`,
    `STREET_ADDRESS`) is a tag, not an acronym, and is lower-cased whole.
    """
    if raw.upper() == raw:
        words = re.split(r"[_\-\s]+", raw.lower())
        return " ".join(w for w in words if w)
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", raw)
    words = [w for w in re.split(r"[_\-\s]+", spaced) if w]
    return " ".join(w if (len(w) > 1 and w.upper() == w) else w.lower() for w in words)


def _table_for(dataset: str) -> Dict[str, str]:
    if dataset in LABEL_TABLE:
        return LABEL_TABLE[dataset]
    if dataset.lower().startswith("crossner"):
        return LABEL_TABLE["crossner"]
    return {}


def natural_label(raw: str, dataset: str = "") -> str:
    """The natural-language name for one raw tag of `dataset`."""
    table = _table_for(dataset)
    if raw in table:
        return table[raw]
    lowered = {k.lower(): v for k, v in table.items()}
    if raw.lower() in lowered:
        return lowered[raw.lower()]
    return generic_label(raw)


def make_label_mapper(
    dataset: str,
    label_map: Optional[Mapping[str, Optional[str]]] = None,
    keep_names: bool = False,
) -> Callable[[str], Optional[str]]:
    """A raw tag → name function for one file.

    `keep_names` keeps the file's own names (natural-name formats). A user
    `label_map` entry wins; mapping a tag to None or "" drops that type.
    """
    user = dict(label_map or {})

    def mapper(raw: str) -> Optional[str]:
        if raw in user:
            return user[raw] or None
        if keep_names:
            fixes = NAME_FIXES.get("crossner" if dataset.lower().startswith("crossner") else dataset, {})
            return fixes.get(raw, raw)
        return natural_label(raw, dataset)

    return mapper


_SPELLINGS = (("isation", "ization"), ("ization", "isation"), ("yse", "yze"), ("yze", "yse"))
_NO_NUMBER = frozenset({"else", "other", "misc", "none", "data"})  # words without a plural of their own
WORDING_KINDS = ("separators", "spelling", "number", "capitals")


def reworded(label: str, kind: str) -> str:
    """`label` written another way of one `kind` (WORDING_KINDS), or unchanged where that kind does
    not apply: `separators` (`_`, `-` → space), `spelling` (`organisation` / `organization`),
    `number` (`band` / `bands`, on the last word), `capitals` (`Band` / `band`)."""
    base = " ".join(re.sub(r"[_\-]+", " ", label).split())
    if kind == "separators":
        return base
    if kind == "spelling":
        return next((base.replace(a, b) for a, b in _SPELLINGS if a in base), base)
    if kind == "capitals":
        return base[:1].upper() + base[1:] if base[:1].islower() else base.lower()
    if kind != "number":
        raise ConfigError(f"wording kind must be one of {WORDING_KINDS}, not {kind!r}")
    head, _, last = base.rpartition(" ")
    if not (len(last) >= 4 and last.isalpha() and last.islower() and last not in _NO_NUMBER):
        return base
    if last.endswith("ies"):
        other = last[:-3] + "y"
    elif last.endswith(("sses", "ches", "shes", "xes")):
        other = last[:-2]
    elif last.endswith("s") and not last.endswith("ss"):
        other = last[:-1]
    elif last.endswith("y") and last[-2] not in "aeiou":
        other = last[:-1] + "ies"
    elif last.endswith(("s", "ch", "sh", "x")):
        other = last + "es"
    else:
        other = last + "s"
    return f"{head} {other}" if head else other


def wordings(label: str) -> List[str]:
    """Other ways to write the same type name (every kind of `reworded`). Nothing that changes the
    meaning, so a training turn may ask any of them and keep its answer, and an evaluation may ask
    them all."""
    return [w for w in dict.fromkeys(reworded(label, kind) for kind in WORDING_KINDS) if w != label]
