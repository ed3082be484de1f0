"""Build the student's training mixture: conversations JSONL plus per-source statistics.

    python -m training.mixture --out .train/mixture.jsonl [--tokens 1100000]

Sources: the TRAIN splits (and files with no split) of `supervised/` and
`open_types/`, plus `pile_ner/` (the SLIMER Pile-NER subset asked with type
names, and GLiNER's Pile-NER sample), with the natural-language label names of
`uniner_spacy.evaluation.labels`. Nothing from `zeroshot_dev/` is read, nor any
dev or test split of a benchmark set.

Every data set gets a token budget (a share of `--tokens`), so that no set
dominates: the CoNLL and bio benchmark sets get a larger share (their quality
needs many examples), the SLIMER Pile-NER subset a fixed share (hundreds of
types), GLiNER's Pile-NER sample is taken whole, and every open-type set gets an
equal share of the rest (type variety is what zero-shot quality depends on). Conversations are
picked at random up to the budget, preferring passages with mentions;
passages without any mention make up at most `--empty-share` of a set.
Silver sets may join them: `--silver-passages` (en_core_web_sm's types over
train passages) and `--pipeline-silver` (this pipeline's resolved entities, a
`uniner-spacy annotate` output, checked against gold with `--pipeline-coarse`).
`--label-set-share` shows a conversation's types before its passage (the
label-set prompt), and `--regroup` adds MultiCoNER II passages asked a generic
type beside its fine ones, which only that prompt can teach.

Writes `<out>` (one `Conversation` a line), `<out stem>.stats.json` (per-source
counts, `[]` share, distinct types, licences) and, with `--uniner-json`, the
official UniNER conversation JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from training.conversations import (
    BuildOptions,
    Conversation,
    build_conversations,
    confusable_types,
    load_definitions,
    negative_share,
    type_frequencies,
    write_jsonl,
    write_uniner_json,
)
from uniner_spacy.types import AnnotatedText

DATA_ROOT = Path(os.environ.get("UNINER_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FOLDERS = ("supervised", "open_types", "pile_ner")
FORBIDDEN = "zeroshot_dev"

# Share of the token budget per data set (the rest is split evenly among the others).
SHARES: Dict[str, float] = {
    "conll2003": 0.22,
    "anatem": 0.07,
    "bc2gm": 0.07,
    "bc5cdr": 0.07,
    "ncbi": 0.07,
    "pile_ner_slimer": 0.15,
    "wikiann_en": 0.02,
    "broad_twitter": 0.02,
    "harveyner": 0.01,
}
TAKE_ALL = {"pile_ner_gliner"}
# Same data asked another way, benchmark-overlapping, or no train split.
EXCLUDE = {
    "pile_ner_slimer_falsedef",  # the TrueDef file's passages again
    "jnlpba",  # GENIA abstracts: overlaps the GENIA test benchmark; dev/test only
    "wikineural_en",  # validation split only
    "genia",  # test only
}
# en_core_web_sm's OntoNotes types over the raw text of the other sets' train passages
# (`--silver-passages`): types few gold sets label (dates, money, laws, works of art, products,
# nationalities), named as the student is asked. Persons, organisations and places are left to the gold
# sets, which label them with more care; bare numbers are no type anyone asks for.
SILVER = "spacy_silver"
SILVER_TYPES: Dict[str, str] = {
    "DATE": "date", "TIME": "time", "MONEY": "money", "PERCENT": "percent", "QUANTITY": "quantity",
    "EVENT": "event", "LAW": "law", "WORK_OF_ART": "work of art", "PRODUCT": "product",
    "NORP": "nationality", "LANGUAGE": "language", "FAC": "facility",
}
# The pipeline's own resolved entities (`--pipeline-silver`: `uniner-spacy annotate` output): types the
# gold sets do not label, over their raw train text, as the pipeline (its conflict stage choosing among
# competing labels) decides them.
PIPELINE_SILVER = "uniner_silver"
# MultiCoNER II's fine types under the generic type each refines (`--regroup`): a `multiconer2_grouped`
# set asks a generic type beside a few of its fine ones, answering the other fine types' mentions under
# the generic, always with the label-set prompt: each answer is the finest type shown, as CrossNER asks
# `writer` beside `person`. The `other ...` types are never shown; their mentions are the generic's.
GROUPED = "multiconer2_grouped"
MULTICONER_GROUPS: Dict[str, Tuple[str, ...]] = {
    "person": ("artist", "athlete", "cleric", "politician", "scientist", "sports manager", "other person"),
    "location": ("facility", "human settlement", "station", "other location"),
    "organization": ("aerospace manufacturer", "car manufacturer", "musical group", "private corporation",
                     "public corporation", "sports group"),  # MultiCoNER's own `ORG` is `organization`
    "product": ("clothing", "drink", "food", "vehicle", "other product"),
    "creative work": ("artwork", "musical work", "software", "visual work", "written work"),
}
# Data sets without a train split whose only file may still be trained on.
EXTRA_SPLITS = {"fewnerd_inter_episodes": ("dev",)}

LICENCES: Dict[str, str] = {
    "conll2003": "CoNLL-2003 (Reuters RCV1 terms)",
    "anatem": "CC BY 4.0 (cambridgeltl)",
    "bc2gm": "CC BY 4.0 (cambridgeltl)",
    "bc5cdr": "CC BY 4.0 (cambridgeltl)",
    "ncbi": "CC BY 4.0 (cambridgeltl)",
    "wikiann_en": "none stated (WikiANN)",
    "broad_twitter": "CC BY 4.0",
    "harveyner": "none stated",
    "pile_ner_slimer": "CC BY-NC 4.0 (Pile-NER, research use)",
    "pile_ner_gliner": "CC BY-NC 4.0 (Pile-NER, research use)",
    "finer_ord": "CC BY-NC 4.0",
    "hipe2022_topres19th_en": "CC BY-NC-SA 4.0",
    "hipe2022_hipe2020_en": "CC BY-NC-SA 4.0",
    "hipe2022_ajmc_en": "CC BY 4.0",
    "gum": "CC BY 4.0 annotations; texts CC BY / CC BY-SA / CC BY-NC-SA (WikiHow)",
    "wnut16": "GPL-3.0 repository",
    "wnut17": "CC BY 4.0",
    "scierc": "none stated",
    "few_tk": "none stated",
    "multiconer2_en": "none stated (copy)",
    "tasteset2": "MIT",
    "musicreconer": "MIT",
    "cyner_mitre": "MIT",
    "anem": "CC BY-SA 3.0",
    "re3d": "OGL / CC BY / public domain (mixed)",
    "sec_filings": "CC BY 3.0",
    "wikigold": "CC BY 4.0",
    SILVER: "the source passages' licences; labels by en_core_web_sm (MIT)",
    PIPELINE_SILVER: "the source passages' licences; labels by this pipeline",
    GROUPED: "none stated (copy of MultiCoNER II)",
}


def source_files(root: Path) -> List[Tuple[str, str, Path, str]]:
    """(folder, data set, path, format) of every file the mixture may use."""
    from uniner_spacy.evaluation.loaders import iter_data_files

    out = []
    for f in iter_data_files(root, folders=FOLDERS):
        if FORBIDDEN in f.path.parts:
            raise RuntimeError(f"refusing to train on {f.path}")
        if f.dataset in EXCLUDE:
            continue
        if f.split in ("train", "all") or f.split in EXTRA_SPLITS.get(f.dataset, ()):
            out.append((f.folder, f.dataset, f.path, f.format))
    return out


def load_sources(root: Path) -> Dict[str, List[AnnotatedText]]:
    from uniner_spacy.evaluation.loaders import load

    by_set: Dict[str, List[AnnotatedText]] = {}
    for _folder, dataset, path, fmt in source_files(root):
        examples = load(path, format=fmt, source=dataset)
        by_set.setdefault(dataset, []).extend(ex for ex in examples if ex.text.strip() and ex.labels)
    return by_set


def spacy_silver(by_set: Dict[str, List[AnnotatedText]], n: int, seed: int,
                 model: str = "default") -> List[AnnotatedText]:
    """`n` train passages of the supervised and open-type sets (not Pile-NER, whose passages a
    teacher labelled already), labelled by a spaCy pipeline for `SILVER_TYPES`: exhaustive for those
    types as far as the pipeline is, so a missing type is a true `[]`."""
    from uniner_spacy.stages.precision import load_ner
    from uniner_spacy.types import Entity

    pool = sorted({ex.text for d, exs in by_set.items() if not d.startswith("pile_ner") for ex in exs})
    texts = random.Random(f"{seed}-{SILVER}").sample(pool, min(n, len(pool)))
    labels = sorted(SILVER_TYPES.values())
    out = []
    for text, doc in zip(texts, load_ner(model).pipe(texts, batch_size=256)):
        ents = [Entity(e.start_char, e.end_char, SILVER_TYPES[e.label_]) for e in doc.ents if e.label_ in SILVER_TYPES]
        out.append(AnnotatedText(text, ents, labels, SILVER))
    return out


def pipeline_silver(paths: Sequence[Path]) -> List[AnnotatedText]:
    """The passages of `uniner-spacy annotate` outputs, labelled for the labels of their run.

    Each passage teaches every label of its run, so a label it does not mention
    is taught as `[]`: a row that did not complete is left out (never read as
    "no entities"), and so is a passage where the pipeline was unsure: an
    answer cut at the token limit, or a candidate it dropped that no entity
    covers (`SilverFilters`, as the spaCy student's silver).
    """
    import spacy

    from uniner_spacy.distill.silver import SilverFilters, silver_docs
    from uniner_spacy.io import jsonl_rows
    from uniner_spacy.runs import RunRecord, record_path
    from uniner_spacy.types import Entity

    nlp = spacy.blank("en")  # tokens only: where the missing spans lie
    out = []
    for path in map(Path, paths):
        record = record_path(path)
        if not record.exists():
            raise SystemExit(f"{path} has no run record ({record.name}): give the .jsonl output of "
                             "`uniner-spacy annotate`, whose record says which labels it asked")
        labels = list(RunRecord.read(record).labels)
        docs, _ = silver_docs(nlp, [row for _, row in jsonl_rows(path)], SilverFilters(unsure_candidates=True))
        for doc in docs:
            if all(t.ent_iob_ for t in doc):  # "" where a span was marked missing
                ents = [Entity(e.start_char, e.end_char, e.label_) for e in doc.ents]
                out.append(AnnotatedText(doc.text, ents, labels, PIPELINE_SILVER))
    return out


def group_of(groups: Dict[str, Tuple[str, ...]] = MULTICONER_GROUPS) -> Dict[str, str]:
    """Each fine type, and each generic type itself, -> its generic type."""
    return {**{fine: g for g, fines in groups.items() for fine in fines}, **{g: g for g in groups}}


def regrouped(examples: Sequence[AnnotatedText], n: int, seed: int,
              groups: Dict[str, Tuple[str, ...]] = MULTICONER_GROUPS) -> List[AnnotatedText]:
    """`n` passages relabelled for the generic type of each group they mention and one to three of its
    fine types: a mention of a fine type not shown is the generic's; other groups are not asked."""
    rng = random.Random(f"{seed}-{GROUPED}")
    generic_of = group_of(groups)
    pool = [ex for ex in examples if any(e.label in generic_of for e in ex.entities)]
    out = []
    for ex in rng.sample(pool, min(n, len(pool))):
        shown: List[str] = []
        for g in sorted({generic_of[e.label] for e in ex.entities if e.label in generic_of}):
            fines = [f for f in groups[g] if not f.startswith("other ")]
            shown += [g] + rng.sample(fines, rng.randint(1, min(3, len(fines))))
        out.append(asked_as(ex, shown, generic_of))
    return out


def asked_as(ex: AnnotatedText, shown: List[str], generic_of: Dict[str, str]) -> AnnotatedText:
    """`ex` asked the label set `shown`: a mention of a fine type not shown is its generic's, and a
    mention whose label is still not shown is dropped."""
    as_shown = {label: label if label in shown else generic_of.get(label) for label in {e.label for e in ex.entities}}
    ents = [replace(e, label=as_shown[e.label]) for e in ex.entities if as_shown[e.label] in shown]
    return AnnotatedText(ex.text, ents, shown, GROUPED)


def agree_with_gold(silver: Sequence[AnnotatedText], gold: Dict[str, AnnotatedText],
                    coarse: Dict[str, str]) -> List[AnnotatedText]:
    """Silver passages a gold set labels too, kept only where they agree with it.

    The gold says which spans are what kind of thing, the pipeline adds the
    finer type: `coarse` maps a silver label to the gold label it refines
    (`politician` → `person`; a label the gold set has is its own). A passage
    is kept if each of its entities of such labels lies on a gold span of that
    gold label and each gold span of those labels is one of its entities; an
    entity cannot be dropped alone, since its span would then be taught as `[]`.
    A kept passage then asks only the refined labels: the gold set teaches its
    own, and the pipeline's answer for one (`person` without the politicians,
    which `politician` took) is another convention than the gold's. Passages no
    gold set labels are kept as they are.
    """
    out = []
    for ex in silver:
        ref = gold.get(ex.text)
        if ref is not None:
            to_gold = {label: coarse.get(label, label) for label in ex.labels}
            checked = {g for g in to_gold.values() if g in ref.labels}
            truth = {(e.start, e.end, e.label) for e in ref.entities if e.label in checked}
            claimed = {(e.start, e.end, to_gold[e.label]) for e in ex.entities if to_gold[e.label] in checked}
            if truth != claimed or len(claimed) < sum(to_gold[e.label] in checked for e in ex.entities):
                continue
            ex = replace(ex, entities=[e for e in ex.entities if e.label not in ref.labels],
                         labels=[label for label in ex.labels if label not in ref.labels])
        out.append(ex)
    return out


def build_mixture(
    root: Path,
    tokenizer,
    total_tokens: int,
    options: BuildOptions,
    empty_share: float = 0.1,
    eos: str = "<|im_end|>",
    seed: int = 0,
    shares: Optional[Dict[str, float]] = None,
    silver_passages: int = 0,
    pipeline_annotations: Sequence[Path] = (),
    pipeline_coarse: Optional[Dict[str, str]] = None,
    regroup: int = 0,
) -> Tuple[List[Conversation], dict]:
    shares = SHARES if shares is None else shares
    by_set = load_sources(root)
    if silver_passages > 0:
        by_set[SILVER] = spacy_silver(by_set, silver_passages, seed)
    if regroup > 0:
        by_set[GROUPED] = regrouped(by_set.get("multiconer2_en", []), regroup, seed)
    if pipeline_annotations:
        silver = pipeline_silver(pipeline_annotations)
        if pipeline_coarse is not None:
            gold = {ex.text: ex for d, exs in sorted(by_set.items()) if d not in (SILVER, PIPELINE_SILVER)
                    for ex in exs}
            silver = agree_with_gold(silver, gold, pipeline_coarse)
        by_set[PIPELINE_SILVER] = silver
    freq = type_frequencies(ex for exs in by_set.values() for ex in exs)
    if options.hard_negatives > 0 and options.confusable is None:
        options = replace(options, confusable=confusable_types(ex.labels for exs in by_set.values() for ex in exs))

    def offsets(text: str):
        return tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]

    others = [d for d in by_set if d not in shares and d not in TAKE_ALL]
    fixed = sum(shares.get(d, 0.0) for d in by_set)
    budget: Dict[str, Optional[int]] = {}
    for d in by_set:
        if d in TAKE_ALL:
            budget[d] = None
        elif d in shares:
            budget[d] = int(shares[d] * total_tokens)
    picked: Dict[str, List[Conversation]] = {}
    # take-all sets first: what they use comes out of the others' budget
    used = 0
    for d in sorted(TAKE_ALL & set(by_set)):
        convs = build_conversations(by_set[d], _opts(options, seed, d), freq, offsets)
        picked[d] = convs
        used += sum(_length(c, tokenizer, eos) for c in convs)
    rest = max(0, total_tokens - used - int(fixed * total_tokens))
    for d in others:
        budget[d] = rest // max(1, len(others))
    for d in sorted(by_set):
        if d in TAKE_ALL:
            continue
        rng = random.Random(f"{seed}-{d}")
        examples = list(by_set[d])
        rng.shuffle(examples)
        limit = budget[d] or 0
        # build lazily: shuffle, convert in slices until the budget is met
        with_mentions: List[Conversation] = []
        empty: List[Conversation] = []
        tokens_pos = tokens_empty = 0
        for start in range(0, len(examples), 256):
            convs = build_conversations(examples[start : start + 256], _opts(options, seed + start, d), freq, offsets)
            for c in convs:
                n = _length(c, tokenizer, eos)
                if c.n_negative == len(c.turns):
                    if tokens_empty + n <= empty_share * limit:
                        empty.append(c)
                        tokens_empty += n
                elif tokens_pos + n <= (1 - empty_share) * limit:
                    with_mentions.append(c)
                    tokens_pos += n
            if tokens_pos >= (1 - empty_share) * limit * 0.98:
                break
        picked[d] = with_mentions + empty
    mixture = [c for d in sorted(picked) for c in picked[d]]
    random.Random(seed).shuffle(mixture)
    return mixture, _stats(picked, tokenizer, eos, total_tokens, options)


def parse_shares(text: str) -> Dict[str, float]:
    """'a=0.3,b=0.1' → {'a': 0.3, 'b': 0.1}; a later phase re-weights sets without editing SHARES."""
    return {name: float(value) for name, value in parse_mapping(text, "--shares").items()}


def parse_mapping(text: str, option: str = "--pipeline-coarse") -> Dict[str, str]:
    """'a=x,b=y' → {'a': 'x', 'b': 'y'}."""
    out: Dict[str, str] = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{option} item {item!r} is not NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def _opts(options: BuildOptions, seed: int, dataset: str) -> BuildOptions:
    if dataset == GROUPED:  # its answers hold only beside the types shown, all of them asked
        options = replace(options, label_set_share=1.0, ask_all=True)
    return replace(options, seed=_stable_seed(seed, dataset))


def _stable_seed(seed: int, name: str) -> int:
    import zlib

    return (zlib.crc32(name.encode()) + seed) & 0xFFFFFFFF


def _length(conv: Conversation, tokenizer, eos: str) -> int:
    text, _ = conv.render(eos)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _stats(picked: Dict[str, List[Conversation]], tokenizer, eos: str, total: int, options: BuildOptions) -> dict:
    sources = {}
    all_types: Counter = Counter()
    for d, convs in sorted(picked.items()):
        types: Counter = Counter()
        for c in convs:
            for t, (_, ans) in zip(c.types, c.turns):
                if ans != "[]":
                    types[t] += 1
        all_types.update(types)
        sources[d] = {
            "conversations": len(convs),
            "turns": sum(len(c.turns) for c in convs),
            "negatives": sum(c.n_negative for c in convs),
            "types": len(types),
            "tokens": sum(_length(c, tokenizer, eos) for c in convs),
            "label_set_shown": sum(1 for c in convs if c.label_set),
            "licence": LICENCES.get(d, "see open_types/MANIFEST.md"),
        }
    every = [c for convs in picked.values() for c in convs]
    return {
        "conversations": len(every),
        "turns": sum(len(c.turns) for c in every),
        "negative_share": round(negative_share(every), 4),
        "distinct_types": len(all_types),
        "tokens": sum(s["tokens"] for s in sources.values()),
        "token_budget": total,
        "options": {k: v for k, v in options.__dict__.items() if k not in ("definitions", "confusable")},
        "sources": sources,
    }


Answers = Dict[Tuple[int, str], Set[str]]  # (passage, asked type) -> mentions


def regroup_confusion(passages: Sequence[AnnotatedText], answers: Answers) -> Dict[str, float]:
    """Of the gold mentions of each shown fine type, the share its own question found and the share
    the generic question claimed as well (0 is right); of the generic type's, the share it found."""
    generic_of = group_of()
    fine = fine_found = also_generic = generic = generic_found = 0
    for k, ex in enumerate(passages):
        for e in ex.entities:
            mention = ex.text[e.start : e.end]
            if e.label in MULTICONER_GROUPS:
                generic += 1
                generic_found += mention in answers.get((k, e.label), set())
            else:
                fine += 1
                fine_found += mention in answers.get((k, e.label), set())
                also_generic += mention in answers.get((k, generic_of[e.label]), set())
    return {"fine_mentions": fine, "fine_found": round(fine_found / max(1, fine), 3),
            "fine_also_under_generic": round(also_generic / max(1, fine), 3),
            "generic_mentions": generic, "generic_found": round(generic_found / max(1, generic), 3)}


def main(argv: Optional[Sequence[str]] = None) -> None:
    from transformers import AutoTokenizer

    from uniner_spacy.weights import EMBEDDED_EOS, convert_gguf, embedded_gguf

    p = argparse.ArgumentParser(description="Build the student's training mixture.")
    p.add_argument("--out", default=".train/mixture.jsonl")
    p.add_argument("--data", default=str(DATA_ROOT), help="the shared data folder")
    p.add_argument("--tokens", type=int, default=300_000, help="token budget of the whole mixture")
    p.add_argument("--negative-share", type=float, default=0.3,
                   help="wanted share of [] among turns of passages with mentions")
    p.add_argument("--empty-share", type=float, default=0.1,
                   help="at most this share of a set's tokens from passages with no mention")
    p.add_argument("--definition-mode", default="type", choices=["type", "definition", "both"])
    p.add_argument("--dataset-prompt", action="store_true", help="the dataset-specific template")
    p.add_argument("--uniner-json", help="also write the official UniNER conversation JSON here")
    p.add_argument("--shares", default="",
                   help="override budget shares, e.g. 'conll2003=0.3,ncbi=0.1' (the others keep SHARES)")
    p.add_argument("--hard-negatives", type=float, default=0.0,
                   help="share of a passage's negatives asking the types nearest its own (MiniLM cosine)")
    p.add_argument("--wording-share", type=float, default=0.0,
                   help="chance a turn asks its type in another wording (spelling, number, capitals)")
    p.add_argument("--silver-passages", type=int, default=0,
                   help=f"add a '{SILVER}' set: this many train passages labelled by en_core_web_sm for "
                        "dates, money, events, laws, works of art, products, nationalities ... (0: none)")
    p.add_argument("--pipeline-silver", type=Path, action="append", default=[], metavar="JSONL",
                   help=f"add a '{PIPELINE_SILVER}' set: the passages of a `uniner-spacy annotate` .jsonl "
                        "output, labelled for its run's labels (repeatable)")
    p.add_argument("--pipeline-coarse", default=None, metavar="MAP",
                   help="check those passages against the gold of any set that labels them, e.g. "
                        "'politician=person,city=location' (a silver label -> the gold label it refines; "
                        "a label the gold has is its own): only passages that agree are kept")
    p.add_argument("--label-set-share", type=float, default=0.0,
                   help="chance a conversation shows the types it asks before the passage (the label-set "
                        "prompt; only where no mention answers two of them)")
    p.add_argument("--regroup", type=int, default=0, metavar="N",
                   help=f"add a '{GROUPED}' set: N MultiCoNER II train passages asked a generic type beside "
                        "a few of its fine ones, with the label-set prompt (0: none)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    tokenizer = AutoTokenizer.from_pretrained(str(convert_gguf(embedded_gguf())))
    definitions = None
    if args.definition_mode != "type":
        definitions = load_definitions(Path(args.data) / "pile_ner" / "all_423_NE_definitions.json")
    options = BuildOptions(
        negative_share=args.negative_share,
        definitions=definitions,
        definition_mode=args.definition_mode,
        dataset_prompt=args.dataset_prompt,
        seed=args.seed,
        hard_negatives=args.hard_negatives,
        wording_share=args.wording_share,
        label_set_share=args.label_set_share,
    )
    shares = {**SHARES, **parse_shares(args.shares)}
    if sum(shares.values()) > 1:
        raise SystemExit(f"budget shares add up to {sum(shares.values()):.2f} > 1: lower some with --shares")
    mixture, stats = build_mixture(
        Path(args.data), tokenizer, args.tokens, options, args.empty_share, EMBEDDED_EOS, args.seed, shares,
        args.silver_passages, args.pipeline_silver,
        None if args.pipeline_coarse is None else parse_mapping(args.pipeline_coarse), args.regroup,
    )
    out = Path(args.out)
    write_jsonl(mixture, out)
    stats["shares"] = shares
    Path(str(out).rsplit(".", 1)[0] + ".stats.json").write_text(json.dumps(stats, indent=1))
    if args.uniner_json:
        write_uniner_json(mixture, args.uniner_json)
    print(json.dumps({k: v for k, v in stats.items() if k != "sources"}))
    for d, s in stats["sources"].items():
        print(f"{d:28s} conv {s['conversations']:6d} turns {s['turns']:6d} [] {s['negatives']:5d} "
              f"types {s['types']:3d} tokens {s['tokens']}")


if __name__ == "__main__":
    main()
