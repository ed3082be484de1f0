"""One base error class: callers catch `UninerError` for anything this package raises on purpose."""
from __future__ import annotations


class UninerError(Exception):
    """Base of every error uniner-spacy raises for bad input, config or a missing model."""


class ConfigError(UninerError, ValueError):
    """A setting that cannot work (bad label list, unknown policy, bad stage)."""


class InputError(UninerError, ValueError):
    """Input data that cannot be read (a bad JSONL line, a missing text field)."""


class ModelNotFound(UninerError, RuntimeError):
    """A model or package the configuration names is not installed; nothing is downloaded for you."""


class RulesError(ConfigError):
    """A rules file that does not match the schema (rules/README.md)."""


class FeedbackError(InputError):
    """A correction row that does not match the feedback format."""


class CacheError(UninerError, RuntimeError):
    """An answer cache file that cannot be used as it is (a folder, no permission, locked, a newer
    layout); the message names the path and what to do, and nothing there was moved or deleted."""


class StageError(UninerError, RuntimeError):
    """A stage that failed on one document (a rule's regex past its time limit, say): recorded on that
    doc by `on_error = "record"`, unlike a setup error, which stops the run."""


class TrustError(ConfigError):
    """A file or host that a config, rules file, saved pipeline or adapter folder names beyond what it may
    reach (outside its folder, not a regular file, over the size cap): see docs/security.md."""


class ReviewError(FeedbackError):
    """A reviewed export (Label Studio, Prodigy, doccano) that cannot be read back as it is: an
    unknown label, overlapping spans, an edited text; the message names the document and the span."""


class BackendError(UninerError, RuntimeError):
    """A backend that broke its contract (another number of answers than questions) or, with
    `on_error = "raise"`, queries that failed; with `on_error = "record"` these are recorded instead."""


class MissingFileError(UninerError, FileNotFoundError):
    """A file a setting names (a calibration, say) that is not there when it is first needed."""


class InternalError(UninerError, RuntimeError):
    """A promise between two of our own parts broken (a bug: please report it with the message)."""
