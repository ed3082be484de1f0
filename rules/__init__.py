"""The shipped rule sets (`uniner.Rules.v1`, `path = "default"`); installed as `uniner_spacy.rulesets`."""
