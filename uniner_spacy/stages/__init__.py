"""Post-processing stages over one document's candidates: conflicts, rules, precision check, paraphrases."""
