"""Human reference data: the built-in extracts and a user's own files, mapped onto an
instrument's questions and the population's demographic codes."""

from simsurvey.reference.builtin import BUILTIN
from simsurvey.reference.codes import reference_columns
from simsurvey.reference.load import (
    empty_reference,
    load_reference,
    reference_provenance,
)

__all__ = [
    "BUILTIN",
    "empty_reference",
    "load_reference",
    "reference_columns",
    "reference_provenance",
]
