"""training.mixture.regroup_confusion (benchmarks/regrouped.py): a generic question claiming fine mentions."""
from training.mixture import regroup_confusion as counts
from uniner_spacy.types import AnnotatedText, Entity


def test_a_fine_mention_claimed_by_its_generic_counts_as_confused():
    text = "Obama met Messi in Rome."
    ex = AnnotatedText(text, [Entity(0, 5, "politician"), Entity(10, 15, "person"), Entity(19, 23, "location")],
                       ["person", "politician", "location", "human settlement"])
    answers = {(0, "politician"): {"Obama"}, (0, "person"): {"Obama", "Messi"}, (0, "location"): set()}
    assert counts([ex], answers) == {"fine_mentions": 1, "fine_found": 1.0, "fine_also_under_generic": 1.0,
                                     "generic_mentions": 2, "generic_found": 0.5}
