"""Loaders: one small fixture per format, plus checks on the shared data folder when present."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List

import pytest

from uniner_spacy.evaluation.labels import generic_label, natural_label
from uniner_spacy.evaluation.loaders import bio_spans, detect_format, iter_data_files, load, load_report
from uniner_spacy.types import AnnotatedText, Entity

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("UNINER_DATA", REPO.parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data folder {DATA} absent (set UNINER_DATA)")


def spans(eg: AnnotatedText) -> List[tuple]:
    return [(eg.text[e.start:e.end], e.label) for e in eg.entities]


def write(tmp_path: Path, name: str, content: str, folder: str = "myset") -> Path:
    path = tmp_path / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8"))
    return path


# ---------------------------------------------------------------- tag decoding


def test_bio_spans_lenient_and_io():
    assert bio_spans(["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC"]) == [
        (0, 2, "PER"), (3, 5, "LOC"), (5, 6, "LOC")]
    assert bio_spans(["O", "I-X", "I-Y", "I-Y"]) == [(1, 2, "X"), (2, 4, "Y")]
    assert bio_spans(["NLP-term", "NLP-term", "O", "URL-material"]) == [
        (0, 2, "NLP-term"), (3, 4, "URL-material")]
    assert bio_spans(["S-A", "B-A", "E-A", "O"]) == [(0, 1, "A"), (1, 3, "A")]


# ---------------------------------------------------------------- one test per format


def test_bio_tab(tmp_path):
    path = write(tmp_path, "train.tsv", "-DOCSTART-\tO\n\nJohn\tB-PER\nSmith\tI-PER\nin\tO\nParis\tB-LOC\n\nHi\tO\n",
                 folder="conll_like")
    assert detect_format(path) == "bio"
    egs = load(path, source="conll2003")
    assert [eg.text for eg in egs] == ["John Smith in Paris", "Hi"]
    assert spans(egs[0]) == [("John Smith", "person"), ("Paris", "location")]
    assert egs[0].entities[0] == Entity(0, 10, "person")
    assert egs[1].labels == ["person", "location", "organization", "else"]  # CoNLL's full set
    assert egs[1].entities == []
    assert egs[0].source == "conll2003"


def test_bio_crlf_and_whitespace_lines(tmp_path):
    path = write(tmp_path, "dev.txt", "Emotet\tB-Malware\r\nspreads\tO\r\n\t\r\nvia\tO\r\nmail\tB-System\r\n")
    egs = load(path)
    assert [eg.text for eg in egs] == ["Emotet spreads", "via mail"]
    assert spans(egs[0]) == [("Emotet", "malware")]


def test_bio_extra_columns_stackoverflow(tmp_path):
    path = write(tmp_path, "train.txt", "use\tO\tuse\tO\nnumpy\tB-Library\tnumpy\tB-Code_Block\n\n")
    assert detect_format(path) == "bio"
    assert spans(load(path)[0]) == [("numpy", "library")]


def test_tag_first_mit(tmp_path):
    path = write(
        tmp_path, "train.txt", "O\twhat\nO\tmovies\nB-ACTOR\tbruce\nI-ACTOR\twillis\n\nO\thi\n", folder="mit_movie"
    )
    assert detect_format(path) == "bio_tag_first"
    egs = load(path)
    assert spans(egs[0]) == [("bruce willis", "actor")]
    assert "year" in egs[1].labels  # mit_movie's full label set comes from the table


def test_lang_prefix_wikiann(tmp_path):
    path = write(tmp_path, "dev", "en:Sioux\tB-ORG\nen:Falls\tI-ORG\nen:(\tO\nen:Dakota\tB-LOC\nen:)\tO\n\n",
                 folder="wikiann_en")
    assert detect_format(path) == "bio_lang_prefix"
    eg = load(path)[0]
    assert eg.text == "Sioux Falls ( Dakota )"
    assert spans(eg) == [("Sioux Falls", "organization"), ("Dakota", "location")]


def test_indexed_wikineural(tmp_path):
    path = write(tmp_path, "val.conllu",
                 "0\tHer\tO\n1\tvisit\tO\n2\tto\tO\n3\tTuvalu\tB-LOC\n4\tand\tO\n5\tEU\tI-MISC\n\n",
                 folder="wikineural_en")
    assert detect_format(path) == "bio_indexed"
    assert spans(load(path)[0]) == [("Tuvalu", "location"), ("EU", "else")]


def test_tag_last_anem(tmp_path):
    path = write(tmp_path, "AnEM.test",
                 "rectal\t32\t38\tB-Pathological_formation\ncarcinoma\t39\t48\tI-Pathological_formation\n"
                 ".\t48\t49\tO\n\n",
                 folder="anem")
    assert detect_format(path) == "bio_tag_last"
    assert spans(load(path)[0]) == [("rectal carcinoma", "pathological formation")]


def test_conll_space_harvey_and_iob1(tmp_path):
    harvey = write(tmp_path, "tweets.dev.bio",
                   "-DOCSTART- O\nFood O\ncorner B-POINT\nof I-POINT\nRichey I-POINT\n-DOCSTART- O\nok O\n",
                   folder="harveyner")
    assert detect_format(harvey) == "conll_space"
    egs = load(harvey)
    assert [eg.text for eg in egs] == ["Food corner of Richey", "ok"]
    assert spans(egs[0]) == [("corner of Richey", "point")]
    assert "river" in egs[1].labels  # harveyner's full label set comes from the table
    wikigold = write(tmp_path, "wikigold.conll.txt", "010 I-MISC\nis O\nThe I-ORG\nMad I-ORG\nB-ORG B-ORG\n",
                     folder="wikigold")
    assert spans(load(wikigold)[0]) == [("010", "else"), ("The Mad", "organization"), ("B-ORG", "organization")]


def test_conll_4col_with_id_headers(tmp_path):
    sec = write(tmp_path, "FIN3.txt", "-DOCSTART- -X- O O\n\nSilicium NNP - I-ORG\nde IN - I-ORG\nand CC - O\n",
                folder="sec_filings")
    assert detect_format(sec) == "conll_space"
    assert spans(load(sec)[0]) == [("Silicium de", "organization")]
    mc = write(tmp_path, "en-dev.conll",
               "\n# id 52\tdomain=en\neli _ _ B-OtherPER\nlilly _ _ I-OtherPER\n# _ _ O\n\n"
               "# id 53\tdomain=en\nok _ _ O\n",
               folder="multiconer2_en")
    egs = load(mc)
    assert [eg.text for eg in egs] == ["eli lilly #", "ok"]
    assert spans(egs[0]) == [("eli lilly", "other person")]
    assert len(egs[0].labels) == 33  # the full MultiCoNER II label set


def test_io_scheme_few_tk(tmp_path):
    write(tmp_path, "labels.txt", "NLP-term\nURL-material\nNLP-dataset\n", folder="few_tk")
    path = write(
        tmp_path, "dev.txt", "word\tNLP-term\nembeddings\tNLP-term\non\tO\nSQuAD\tNLP-dataset\n\n", folder="few_tk"
    )
    eg = load(path)[0]
    assert spans(eg) == [("word embeddings", "NLP term"), ("SQuAD", "NLP data set")]
    assert eg.labels == ["NLP term", "URL material", "NLP data set"]


def test_hipe(tmp_path):
    content = ("TOKEN\tNE-COARSE-LIT\tNE-COARSE-METO\tNE-FINE-LIT\tNE-FINE-METO\t"
               "NE-FINE-COMP\tNE-NESTED\tNEL-LIT\tNEL-METO\tMISC\n"
               "# hipe2022:document_id = x\n"
               "From\tO\tO\t_\t_\t_\t_\t_\t_\t_\n"
               "AMERICAN\tB-prod\tO\t_\t_\t_\t_\tNIL\t_\t_\n"
               "MERCURY\tI-prod\tO\t_\t_\t_\t_\tNIL\t_\tNoSpaceAfter\n"
               ".\tO\tO\t_\t_\t_\t_\t_\t_\tEndOfLine|EndOfSentence\n"
               "Ajax\tB-pers\tO\t_\t_\t_\t_\t_\t_\t_\n")
    path = write(tmp_path, "HIPE-2022-v2.1-hipe2020-dev-en.tsv", content, folder="hipe2022_hipe2020_en")
    assert detect_format(path) == "hipe"
    egs = load(path)
    assert [eg.text for eg in egs] == ["From AMERICAN MERCURY .", "Ajax"]
    assert spans(egs[0]) == [("AMERICAN MERCURY", "product")]
    assert spans(egs[1]) == [("Ajax", "person")]


def test_finer_csv(tmp_path):
    path = write(tmp_path, "val.csv",
                 "gold_label,gold_token,doc_idx,sent_idx\n1,Tim,9,0\n2,Cook,9,0\n0,of,9,0\n5,Apple,9,0\n3,Paris,9,1\n",
                 folder="finer_ord")
    assert detect_format(path) == "finer_csv"
    egs = load(path)
    assert spans(egs[0]) == [("Tim Cook", "person"), ("Apple", "organization")]
    assert spans(egs[1]) == [("Paris", "location")]


def test_ie_json_keeps_file_names(tmp_path):
    write(tmp_path, "labels.json", json.dumps(["location", "else", "organization", "person"]), folder="conll2003")
    data = [{"sentence": "LONDON 1996-08-30", "entities": [{"name": "LONDON", "type": "location", "pos": [0, 6]}]},
            {"sentence": "West Indian Phil", "entities": [{"name": "West Indian", "type": "else", "pos": [0, 11]}]}]
    path = write(tmp_path, "dev.json", json.dumps(data), folder="conll2003")
    assert detect_format(path) == "ie_json"
    egs = load(path)
    assert spans(egs[1]) == [("West Indian", "else")]
    assert egs[0].labels == ["location", "else", "organization", "person"]


def test_ie_json_crossner_name_fixes(tmp_path):
    write(tmp_path, "labels.json", json.dumps(["organization", "else"]), folder="crossner_music")
    data = [{"sentence": "EMI x", "entities": [{"name": "EMI", "type": "organisation", "pos": [0, 3]},
                                                {"name": "x", "type": "misc", "pos": [4, 5]}]}]
    path = write(tmp_path, "dev.ie.json", json.dumps(data), folder="crossner_music")
    eg = load(path)[0]
    assert spans(eg) == [("EMI", "organization"), ("x", "else")]
    assert eg.labels == ["organization", "else"]


def _turns(text: str, pairs) -> dict:
    conv = [{"from": "human", "value": f"Text: {text}"}, {"from": "gpt", "value": "I've read this text."}]
    for t, answer in pairs:
        conv += [{"from": "human", "value": f"What describes {t} in the text?"}, {"from": "gpt", "value": answer}]
    return {"conversations": conv}


def test_conversation_official_eval_file(tmp_path):
    items = [_turns("a four star restaurant with a bar", [("Amenity", '["bar"]')]),
             _turns("a four star restaurant with a bar", [("Rating", '["four star"]')]),
             _turns("a four star restaurant with a bar", [("Hours", "[]")]),
             _turns("a four star restaurant with a bar", [("Amenity", '["pub"]')]),  # duplicate sentence
             _turns("any bbq", [("Cuisine", '["bbq", "BBQ"]'), ("Dish", '["ribs"]')])]  # training style
    path = write(tmp_path, "mit-restaurant.json", json.dumps(items), folder="official")
    assert detect_format(path) == "conversation"
    loaded = load_report(path)
    egs = loaded.examples
    assert len(egs) == 3
    assert egs[0].labels == ["Amenity", "Rating", "Hours"]
    assert spans(egs[0]) == [("four star", "Rating"), ("bar", "Amenity")]
    assert egs[1].labels == ["Amenity"] and egs[1].entities == []
    assert spans(egs[2]) == [("bbq", "Cuisine")]
    assert loaded.unlocated == [(1, "Amenity", "pub"), (2, "Dish", "ribs")]


def test_slimer_groups_questions_per_passage(tmp_path):
    rows = [{"doc_question_pairID": "1:0", "tagName": "person", "input": "Ann met Ann and Bob.", "instruction": "",
             "output": '["Ann", "Bob"]'},
            {"doc_question_pairID": "2:0", "tagName": "city", "input": "Rome.", "instruction": "", "output": "[]"},
            {"doc_question_pairID": "1:1", "tagName": "city", "input": "Ann met Ann and Bob.", "instruction": "",
             "output": '["Oslo"]'}]
    path = write(tmp_path, "validation.jsonl", "\n".join(json.dumps(r) for r in rows), folder="pile_ner")
    assert detect_format(path) == "slimer"
    loaded = load_report(path)
    eg = loaded.examples[0]
    assert eg.labels == ["person", "city"]
    assert [(e.start, e.end, e.label) for e in eg.entities] == [(0, 3, "person"), (8, 11, "person"), (16, 19, "person")]
    assert loaded.examples[1].labels == ["city"]
    assert loaded.unlocated == [(0, "city", "Oslo")]


def test_gliner_json_per_text_labels(tmp_path):
    data = [{"tokenized_text": ["State", "University", "Press", ",", "1997"],
             "ner": [[0, 2, "Publisher"], [4, 4, "Date"]]},
            {"tokenized_text": ["Hi", "Katarzyna"], "ner": [[1, 1, "Person"]]}]
    path = write(tmp_path, "sample.json", json.dumps(data), folder="pile_ner")
    assert detect_format(path) == "gliner"
    egs = load(path)
    assert spans(egs[0]) == [("State University Press", "publisher"), ("1997", "date")]
    assert egs[1].labels == ["person"]


def test_gliner_csv_textile(tmp_path):
    content = ('tokenized_text,ner\n"[\'the\', \'angle-stripper\', \'.\']","[[1, 1, \'Textile Machinery\']]"\n'
               '"[\'a\', \'loom\']","[[1, 1, \'textile machinery\']]"\n')
    path = write(tmp_path, "all.csv", content, folder="textile_gliner_synth")
    assert detect_format(path) == "gliner_csv"
    egs = load(path)
    assert spans(egs[0]) == [("angle-stripper", "textile machinery")]
    assert egs[1].labels == ["textile machinery", "inventor", "time period"]  # two spellings, one type


def test_w2ner_genia(tmp_path):
    data = [{"sentence": ["the", "human", "SCL", "locus", "in", "T", "cells"],
             "ner": [{"index": [1, 2, 3], "type": "DNA"}, {"index": [2], "type": "protein"},
                     {"index": [5, 6], "type": "cell_type"}]}]
    path = write(tmp_path, "test.json", json.dumps(data), folder="genia")
    assert detect_format(path) == "w2ner"
    assert spans(load(path)[0]) == [("human SCL locus", "DNA"), ("SCL", "protein"), ("T cells", "cell type")]


def test_dygie_scierc(tmp_path):
    doc = {"doc_key": "d", "sentences": [["We", "use", "CRF", "."], ["BLEU", "improves"]],
           "ner": [[[2, 2, "Method"]], [[4, 4, "Metric"]]], "relations": [[], []], "clusters": []}
    path = write(tmp_path, "dev.json", json.dumps(doc) + "\n", folder="scierc")
    assert detect_format(path) == "dygie"
    egs = load(path)
    assert spans(egs[0]) == [("CRF", "method")] and spans(egs[1]) == [("BLEU", "metric")]


def test_presidio(tmp_path):
    data = [{"full_text": "Call Ann at 555-1234", "masked": "", "template_id": 1, "metadata": None,
             "spans": [{"entity_type": "PHONE_NUMBER", "entity_value": "555-1234", "start_position": 12,
                        "end_position": 20},
                       {"entity_type": "PERSON", "entity_value": "Ann", "start_position": 5, "end_position": 8}]}]
    path = write(tmp_path, "synth.json", json.dumps(data, indent=4), folder="presidio_synth")
    assert detect_format(path) == "presidio"
    assert spans(load(path)[0]) == [("Ann", "person"), ("555-1234", "phone number")]


def test_tasteset_csv(tmp_path):
    ents = [{"span": "[(0, 1), ]", "type": "QUANTITY", "entity": "5"},
            {"span": "[(9, 12), ]", "type": "FOOD", "entity": "rum"},
            {"span": "[(13, 21), (23, 28), ]", "type": "TRADE_NAME", "entity": "tomatoes Green"}]
    text = "5 ounces rum\ntomatoes, Green"
    content = 'ingredients,ingredients_entities\n"' + text + '","' + json.dumps(ents).replace('"', '""') + '"\n'
    path = write(tmp_path, "TASTEset.csv", content, folder="tasteset2")
    assert detect_format(path) == "tasteset"
    eg = load(path)[0]
    assert eg.text == text
    assert spans(eg) == [("5", "quantity"), ("rum", "food"), ("tomatoes, Green", "trade name")]


def test_fewnerd_episodes(tmp_path):
    ep = {"types": ["person-scholar", "art-painting"],
          "support": {"word": [["richard", "marius", "wrote"]], "label": [["person-scholar", "person-scholar", "O"]]},
          "query": {"word": [["the", "mona", "lisa"]], "label": [["O", "art-painting", "art-painting"]]}}
    path = write(tmp_path, "dev_5_1.jsonl", json.dumps(ep) + "\n", folder="fewnerd_inter_episodes")
    assert detect_format(path) == "fewnerd_episodes"
    egs = load(path)
    assert [spans(eg) for eg in egs] == [[("richard marius", "scholar")], [("mona lisa", "painting")]]
    assert egs[1].labels == ["scholar", "painting"]


def test_docbin(tmp_path):
    spacy = pytest.importorskip("spacy")
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    doc = nlp("Apple hired Tim Cook")
    doc.ents = [doc.char_span(0, 5, label="ORG"), doc.char_span(12, 20, label="PERSON")]
    path = tmp_path / "docs" / "dev.spacy"
    path.parent.mkdir()
    DocBin(docs=[doc]).to_disk(path)
    assert detect_format(path) == "docbin"
    eg = load(path)[0]
    assert spans(eg) == [("Apple", "org"), ("Tim Cook", "person")]


def test_label_map_override_limit_and_format(tmp_path):
    path = write(tmp_path, "x.data", "John\tB-PER\nsaw\tO\nIBM\tB-ORG\n\nHi\tO\n\nYo\tO\n")
    egs = load(path, format="bio", label_map={"PER": "human being", "ORG": None}, limit=2)
    assert len(egs) == 2
    assert spans(egs[0]) == [("John", "human being")]
    assert egs[0].labels == ["human being"]
    with pytest.raises(ValueError, match="Unknown format"):
        load(path, format="nope")


def test_labels_table_and_fallback():
    assert natural_label("PER", "conll2003") == "person"
    assert natural_label("programlang", "crossner_ai") == "program language"
    assert natural_label("Restaurant_Name", "mit_restaurant") == "restaurant name"
    assert natural_label("Chemical", "bc5cdr") == "chemical"
    assert generic_label("STREET_ADDRESS") == "street address"
    assert generic_label("OtherScientificTerm") == "other scientific term"
    assert generic_label("NLP-focus") == "NLP focus"


def test_iter_data_files_registry(tmp_path):
    write(tmp_path, "train.txt", "a\tO\n", folder="zeroshot_dev/crossner_ai")
    write(tmp_path, "train.ie.json", json.dumps([{"sentence": "a", "entities": []}]), folder="zeroshot_dev/crossner_ai")
    write(tmp_path, "labels.json", "[]", folder="zeroshot_dev/crossner_ai")
    write(tmp_path, "f.conll", "a\tO\n", folder="supervised/broad_twitter")
    write(tmp_path, "AnEM.test", "a\t0\t1\tO\n", folder="open_types/anem")
    files = {(f.dataset, f.split, f.format) for f in iter_data_files(tmp_path)}
    assert files == {
        ("crossner_ai", "train", "ie_json"), ("broad_twitter", "test", "bio"), ("anem", "test", "bio_tag_last")
    }
    train = list(iter_data_files(tmp_path, folders=("supervised", "open_types"), splits=("train",)))
    assert train == []


# ---------------------------------------------------------------- the shared data folder


@needs_data
def test_every_shared_file_loads():
    """Every data file under the four folders is detected and parses into examples."""
    failures = []
    for df in iter_data_files(DATA, dedupe=False):
        try:
            egs = load(df.path, df.format, limit=50)
        except Exception as err:  # report them all, not just the first
            failures.append(f"{df.path}: {err!r}")
            continue
        if not egs or not all(isinstance(eg.text, str) and eg.labels for eg in egs):
            failures.append(f"{df.path}: empty or unlabelled")
        for eg in egs:
            for e in eg.entities:
                assert 0 <= e.start < e.end <= len(eg.text)
    assert not failures, "\n".join(failures)


@needs_data
def test_shared_formats_detected():
    expected = {
        "supervised/conll2003/dev.json": "ie_json", "supervised/genia/test.json": "w2ner",
        "supervised/wikiann_en/dev": "bio_lang_prefix", "supervised/wikineural_en/val.conllu": "bio_indexed",
        "supervised/harveyner/tweets.dev.bio": "conll_space", "zeroshot_dev/mit_movie/train.txt": "bio_tag_first",
        "open_types/anem/AnEM.test": "bio_tag_last", "open_types/multiconer2_en/en-dev.conll": "conll_space",
        "open_types/scierc/dev.json": "dygie", "open_types/presidio_synth/synth_dataset_v2.json": "presidio",
        "open_types/tasteset2/TASTEset.csv": "tasteset", "open_types/finer_ord/val.csv": "finer_csv",
        "open_types/textile_gliner_synth/combined_new_4_october_all.csv": "gliner_csv",
        "open_types/fewnerd_inter_episodes/dev_5_1.jsonl": "fewnerd_episodes",
        "open_types/hipe2022_ajmc_en/HIPE-2022-v2.1-ajmc-dev-en.tsv": "hipe",
        "pile_ner/validation_TrueDef.jsonl": "slimer", "pile_ner/gliner_sample_data.json": "gliner",
    }
    for rel, fmt in expected.items():
        assert detect_format(DATA / rel) == fmt, rel


@needs_data
def test_shared_counts_match_manifest():
    """Spot checks against the mention counts in the data README / MANIFEST."""
    for rel, n_ex, n_ent in [("supervised/conll2003/dev.json", 3250, 5942),
                             ("supervised/wikineural_en/val.conllu", 11590, 19621),
                             ("supervised/genia/test.json", 1854, 5506),
                             ("open_types/sec_filings/FIN3.txt", 303, 318)]:
        egs = load(DATA / rel)
        assert (len(egs), sum(len(eg.entities) for eg in egs)) == (n_ex, n_ent), rel
