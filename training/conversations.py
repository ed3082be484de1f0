"""UniNER training conversations from annotated examples.

One conversation is one passage with every type it mentions asked in turn
(`What describes {type} in the text?` → JSON list of mentions), plus negative
types answered with `[]`, in random order (UNINER.md, "Training recipe").

Negatives are sampled in proportion to how often each type is mentioned over the
whole mixture, but only from the labels the example's own source annotates
exhaustively (`AnnotatedText.labels`): a source that never labels dates must not teach
the model that its sentences contain no dates (data README, "Notes for training
a student").

The output is plain data (`Conversation`) and the official UniNER conversation
JSON (`to_uniner_json`), so a distillation workflow can reuse both.
"""
from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from uniner_spacy.io import jsonl_rows
from uniner_spacy.questions.prompts import ACK, QUESTION, Template, question
from uniner_spacy.types import AnnotatedText, Entity

DEFAULT_MAX_PASSAGE_TOKENS = 256

_Q_HEAD, _Q_TAIL = QUESTION.split("{entity_type}")


@dataclass
class Conversation:
    """One passage and its (asked type, JSON answer) turns.

    `turns[i][0]` is the text that fills `{entity_type}` in the question (the type
    name, or its definition in the definition variant), so that
    `Template.render_conversation(passage, turns)` renders it exactly.
    `dataset` names the data set; `dataset_prompt` is set when the conversation
    uses the dataset-specific template (`Dataset: {name} Text: ...`); `label_set`, when
    not empty, is shown before the passage (the label-set prompt, `prompts.LABEL_SET`).
    """

    passage: str
    turns: List[Tuple[str, str]]
    source: str = ""
    dataset: str = ""
    dataset_prompt: bool = False
    types: List[str] = field(default_factory=list)  # the label behind each turn
    label_set: List[str] = field(default_factory=list)

    def template(self, eos: str, layout: str = "uniner") -> Template:
        return Template(eos=eos, dataset=self.dataset if self.dataset_prompt else None, layout=layout)

    def render(self, eos: str, layout: str = "uniner") -> Tuple[str, list]:
        """Full training text and the character ranges that carry loss (`layout`: prompts.LAYOUTS)."""
        return self.template(eos, layout).render_conversation(self.passage, self.turns, self.label_set)

    def questions(self) -> List[str]:
        return [question(asked) for asked, _ in self.turns]

    @property
    def n_negative(self) -> int:
        return sum(1 for _, answer in self.turns if answer == "[]")


def asked_text(entity_type: str, definition: Optional[str] = None, mode: str = "type") -> str:
    """What fills `{entity_type}` so the rendered question equals `prompts.question(...)`."""
    full = question(entity_type, definition, mode)
    return full[len(_Q_HEAD) : len(full) - len(_Q_TAIL)]


def load_definitions(path: Union[str, Path]) -> Dict[str, str]:
    """SLIMER's `all_423_NE_definitions.json` → {type: one-sentence definition}."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    out: Dict[str, str] = {}
    for name, entry in raw.items():
        answer = entry.get("gpt_answer", "") if isinstance(entry, dict) else entry
        try:
            definition = json.loads(answer).get("Definition", "") if isinstance(answer, str) else ""
        except (json.JSONDecodeError, AttributeError):
            definition = ""
        if definition:
            out[name.lower()] = definition.strip()
    return out


def mentions_of(text: str, entities: Iterable[Entity], label: str) -> List[str]:
    """Mentions of `label` in order of appearance, de-duplicated."""
    seen: List[str] = []
    for ent in sorted(entities, key=lambda e: (e.start, e.end)):
        if ent.label != label:
            continue
        mention = text[ent.start : ent.end]
        if mention and mention not in seen:
            seen.append(mention)
    return seen


def answer_json(text: str, entities: Iterable[Entity], label: str) -> str:
    """Mentions of `label` in order of appearance, de-duplicated, as a JSON list."""
    return json.dumps(mentions_of(text, entities, label), ensure_ascii=False)


def type_frequencies(examples: Iterable[AnnotatedText]) -> Counter:
    """Mention counts per label over a whole mixture (the negative-sampling weights)."""
    freq: Counter = Counter()
    for ex in examples:
        for ent in ex.entities:
            freq[ent.label] += 1
    return freq


# ---------------------------------------------------------------------------
# chunking long texts by the student's tokenizer


def chunk_example(
    example: AnnotatedText,
    count_tokens: Optional[Callable[[str], List[Tuple[int, int]]]],
    max_tokens: int = DEFAULT_MAX_PASSAGE_TOKENS,
) -> List[AnnotatedText]:
    """Split an example into passages of at most `max_tokens` tokens.

    `count_tokens(text)` returns the (start, end) character offsets of the
    tokens (a fast tokenizer's offset mapping). Cuts fall on white space outside
    every entity, preferring sentence ends; entities keep their labels and are
    shifted to passage offsets. Without `count_tokens` the example is returned
    as it is.
    """
    if count_tokens is None:
        return [example]
    offsets = count_tokens(example.text)
    if len(offsets) <= max_tokens:
        return [example]
    text = example.text
    inside = bytearray(len(text) + 1)
    for ent in example.entities:
        for i in range(ent.start + 1, ent.end):
            inside[i] = 1
    pieces: List[AnnotatedText] = []
    start_char, tok = 0, 0
    while tok < len(offsets):
        if len(offsets) - tok <= max_tokens:
            end_char = len(text)
        else:
            limit = offsets[tok + max_tokens - 1][1]
            floor = offsets[tok + max_tokens // 2][0]
            end_char = _best_cut(text, inside, start_char, floor, limit)
        piece = _slice(example, start_char, end_char)
        if piece.text.strip():
            pieces.append(piece)
        # first token that starts at or after the cut
        while tok < len(offsets) and offsets[tok][0] < end_char:
            tok += 1
        start_char = end_char
        while start_char < len(text) and text[start_char].isspace():
            start_char += 1
    return pieces


def _best_cut(text: str, inside: bytearray, start: int, floor: int, limit: int) -> int:
    """A cut position in (start, limit]: a sentence end if possible, else white space."""
    fallback = -1
    for pos in range(limit, max(start, 0), -1):
        if pos >= len(text) or inside[pos] or not text[pos].isspace():
            continue
        if pos >= floor and text[pos - 1] in ".!?\n":
            return pos
        if fallback < 0:
            fallback = pos
    if fallback > start:
        return fallback
    return max(limit, start + 1)  # no white space at all: cut inside a word


def _slice(example: AnnotatedText, start: int, end: int) -> AnnotatedText:
    raw = example.text[start:end]
    lead = len(raw) - len(raw.lstrip())
    text = raw.strip()
    offset = start + lead
    ents = [
        Entity(e.start - offset, e.end - offset, e.label)
        for e in example.entities
        if e.start >= offset and e.end <= offset + len(text)
    ]
    return AnnotatedText(text=text, entities=ents, labels=list(example.labels), source=example.source)


# ---------------------------------------------------------------------------
# building conversations


@dataclass
class BuildOptions:
    """How conversations are built; the defaults keep `[]` answers well under half.

    `negative_share` is the wanted share of `[]` answers among the turns of
    passages that mention at least one type; passages with no mention at all
    get `empty_negatives` negative questions each (a mixture decides how many
    such passages to keep).
    """

    negative_share: float = 0.3
    empty_negatives: int = 1
    max_turns: int = 24
    definitions: Optional[Dict[str, str]] = None
    definition_mode: str = "type"  # type | definition | both (prompts.question)
    dataset_prompt: bool = False
    max_passage_tokens: int = DEFAULT_MAX_PASSAGE_TOKENS
    seed: int = 0
    # hard negatives: this share of a passage's negative questions asks the types nearest its own
    # (`confusable`: per type, {other type: similarity}), so the student learns to answer `[]` for
    # `politician` about a scientist where the source would have labelled a politician
    hard_negatives: float = 0.0
    confusable: Optional[Dict[str, Dict[str, float]]] = None
    # wording robustness: a turn asks its type in another wording (`wordings`) with this chance
    wording_share: float = 0.0
    # the label-set prompt: with this chance a conversation shows the types it asks before the passage,
    # where its answers are exclusive (no mention under two of them); then each answer is the type's
    # own among the others shown, which a question asked alone cannot teach
    label_set_share: float = 0.0
    # every label of the source asked (up to `max_turns`), as the pipe asks every label it shows
    ask_all: bool = False


def build_conversations(
    examples: Sequence[AnnotatedText],
    options: Optional[BuildOptions] = None,
    frequencies: Optional[Counter] = None,
    count_tokens: Optional[Callable[[str], List[Tuple[int, int]]]] = None,
    dataset_of: Optional[Callable[[AnnotatedText], str]] = None,
) -> List[Conversation]:
    """One conversation per (chunked) example, reproducible for a given seed.

    `frequencies` are the negative-sampling weights (default: counted over
    `examples`); pass the counts of the whole mixture when building per source.
    """
    opts = options or BuildOptions()
    rng = random.Random(opts.seed)
    freq = frequencies if frequencies is not None else type_frequencies(examples)
    neg_per_pos = opts.negative_share / max(1e-9, 1.0 - opts.negative_share)
    out: List[Conversation] = []
    for example in examples:
        for piece in chunk_example(example, count_tokens, opts.max_passage_tokens):
            conv = _conversation(piece, opts, rng, freq, neg_per_pos, dataset_of)
            if conv is not None:
                out.append(conv)
    return out


def _conversation(
    example: AnnotatedText,
    opts: BuildOptions,
    rng: random.Random,
    freq: Counter,
    neg_per_pos: float,
    dataset_of: Optional[Callable[[AnnotatedText], str]],
) -> Optional[Conversation]:
    positives: List[str] = []
    for ent in sorted(example.entities, key=lambda e: (e.start, e.end)):
        if ent.label not in positives:
            positives.append(ent.label)
    rng.shuffle(positives)
    positives = positives[: opts.max_turns]
    candidates = sorted({label for label in example.labels if label not in positives})
    if opts.ask_all:
        want = len(candidates)
    elif positives:
        want = _stochastic_round(neg_per_pos * len(positives), rng)
    else:
        want = opts.empty_negatives
    want = min(want, len(candidates), max(0, opts.max_turns - len(positives)))
    # (no draw when off: the mixtures of earlier releases rebuild byte for byte)
    hard = _hard_negatives(positives, candidates, _stochastic_round(opts.hard_negatives * want, rng), opts) \
        if opts.hard_negatives > 0 else []
    rest = [c for c in candidates if c not in hard]
    negatives = hard + _weighted_sample(rest, [freq.get(c, 0) + 1 for c in rest], want - len(hard), rng)
    types = positives + negatives
    if not types:
        return None
    rng.shuffle(types)
    worded = [_worded(t, opts, rng) for t in types]
    mentions = [mentions_of(example.text, example.entities, t) if t in positives else [] for t in types]
    turns = [(_asked(w, opts), json.dumps(m, ensure_ascii=False)) for w, m in zip(worded, mentions)]
    # (no draw when off, as above)
    shown = opts.label_set_share > 0 and rng.random() < opts.label_set_share and _exclusive(mentions)
    dataset = dataset_of(example) if dataset_of else example.source
    return Conversation(
        passage=example.text,
        turns=turns,
        source=example.source,
        dataset=dataset,
        dataset_prompt=opts.dataset_prompt,
        types=types,
        label_set=worded if shown else [],
    )


def _exclusive(answers: Sequence[Sequence[str]]) -> bool:
    """No mention answers two of the questions: the convention a label-set prompt teaches."""
    seen: set = set()
    for mentions in answers:
        if seen & set(mentions):
            return False
        seen |= set(mentions)
    return True


def confusable_types(label_sets: Iterable[Iterable[str]], embedder=None) -> Dict[str, Dict[str, float]]:
    """Per type, every other type of a label set it shares, with their similarity (cosine of their
    MiniLM embeddings, the conflict stage's): the negatives a student confuses with it
    (`BuildOptions.confusable`). Hard negatives are drawn from a passage's own label set, so each
    set's types are ranked among themselves: a global nearest-k list misses most of them."""
    from uniner_spacy.stages.embeddings import label_text, shared_embedder

    sets = {tuple(sorted(set(labels))) for labels in label_sets}
    sets = {s for s in sets if len(s) > 1}
    names = sorted({label for s in sets for label in s})
    if not names:
        return {}
    row = {label: i for i, label in enumerate(names)}
    vectors = (embedder or shared_embedder()).encode([label_text(label) for label in names])
    out: Dict[str, Dict[str, float]] = {}
    for labels in sorted(sets):  # in order: a pair in two sets keeps the same value on every run
        idx = [row[label] for label in labels]
        sims = vectors[idx] @ vectors[idx].T
        for a, label in enumerate(labels):
            near = out.setdefault(label, {})
            for b, other in enumerate(labels):
                if a != b:
                    near[other] = round(float(sims[a, b]), 4)
    return out


def _hard_negatives(positives: Sequence[str], candidates: Sequence[str], k: int, opts: BuildOptions) -> List[str]:
    """The k candidate types nearest any of the passage's own (by `opts.confusable`)."""
    if k <= 0 or not positives or not opts.confusable:
        return []
    near = {c: max(opts.confusable.get(p, {}).get(c, 0.0) for p in positives) for c in candidates}
    return [c for c in sorted(candidates, key=lambda c: (-near[c], c)) if near[c] > 0][:k]


def _worded(label: str, opts: BuildOptions, rng: random.Random) -> str:
    if opts.wording_share <= 0 or rng.random() >= opts.wording_share:
        return label
    from uniner_spacy.evaluation.labels import wordings

    others = wordings(label)
    return rng.choice(others) if others else label


def _asked(label: str, opts: BuildOptions) -> str:
    definition = None
    if opts.definitions and opts.definition_mode != "type":
        definition = opts.definitions.get(label.lower())
    return asked_text(label, definition, opts.definition_mode)


def _stochastic_round(x: float, rng: random.Random) -> int:
    low = math.floor(x)
    return low + (1 if rng.random() < x - low else 0)


def _weighted_sample(items: Sequence[str], weights: Sequence[float], k: int, rng: random.Random) -> List[str]:
    """k items without replacement, each draw proportional to weight (Efraimidis–Spirakis)."""
    if k <= 0:
        return []
    keys = [(rng.random() ** (1.0 / w), item) for item, w in zip(items, weights)]
    keys.sort(reverse=True)
    return [item for _, item in keys[:k]]


# ---------------------------------------------------------------------------
# output


def to_uniner_json(conversations: Iterable[Conversation], id_prefix: str = "conv") -> List[dict]:
    """The official UniNER conversation format (human/gpt turns)."""
    items = []
    for i, conv in enumerate(conversations):
        first = conv.template("").first_user_turn(conv.passage, conv.label_set)
        turns = [{"from": "human", "value": first}, {"from": "gpt", "value": ACK}]
        for asked, answer in conv.turns:
            turns.append({"from": "human", "value": question(asked)})
            turns.append({"from": "gpt", "value": answer})
        items.append({"id": f"{id_prefix}-{i}", "conversations": turns})
    return items


def write_uniner_json(conversations: Iterable[Conversation], path: Union[str, Path]) -> int:
    items = to_uniner_json(conversations)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(items, ensure_ascii=False, indent=1), encoding="utf-8")
    return len(items)


def write_jsonl(conversations: Iterable[Conversation], path: Union[str, Path]) -> int:
    """Our own lossless form (one `Conversation` per line), read back by `read_jsonl`."""
    n = 0
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for conv in conversations:
            row = asdict(conv)
            if not row["label_set"]:  # (so mixtures without the label-set prompt rebuild byte for byte)
                del row["label_set"]
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: Union[str, Path]) -> List[Conversation]:
    """`write_jsonl`'s file back as `Conversation`s."""
    return [Conversation(**{**d, "turns": [tuple(t) for t in d["turns"]]}) for _, d in jsonl_rows(path)]


def negative_share(conversations: Iterable[Conversation]) -> float:
    turns = neg = 0
    for conv in conversations:
        turns += len(conv.turns)
        neg += conv.n_negative
    return neg / turns if turns else 0.0
