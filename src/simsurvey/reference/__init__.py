"""Human reference data: built-in CCES 2016 / ANES 1996 extracts and a user's own files,
mapped onto an instrument's questions and the shared demographic codes."""

from simsurvey.reference.builtin import BUILTIN
from simsurvey.reference.codes import DEMOGRAPHIC_CODES, DEMOGRAPHICS, REFERENCE_COLUMNS
from simsurvey.reference.load import empty_reference, load_reference, reference_provenance

__all__ = [
    "BUILTIN",
    "DEMOGRAPHICS",
    "DEMOGRAPHIC_CODES",
    "REFERENCE_COLUMNS",
    "empty_reference",
    "load_reference",
    "reference_provenance",
]
