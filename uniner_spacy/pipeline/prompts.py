"""Moved to `uniner_spacy.questions.prompts`; this alias remains only for training/train.py, whose
import moves once the training run that uses it is done. Import from `questions.prompts`."""
from ..questions.prompts import LAYOUT_FILE, LAYOUTS, Template, write_layout

__all__ = ["LAYOUT_FILE", "LAYOUTS", "Template", "write_layout"]
