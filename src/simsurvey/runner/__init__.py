"""The respondent runner: async administration with rate limits, retries, cache and checkpoints."""

from simsurvey.runner._administer import AdministerResult, administer, administer_async, prompt_hash
from simsurvey.runner._checkpoint import RESPONSE_COLUMNS, RESPONSE_SCHEMA, model_slug, read_parts

__all__ = [
    "RESPONSE_COLUMNS",
    "RESPONSE_SCHEMA",
    "AdministerResult",
    "administer",
    "administer_async",
    "model_slug",
    "prompt_hash",
    "read_parts",
]
