"""simsurvey: can an LLM "silicon sample" stand in for a human sample?

The stages are library calls as well as CLI steps; this module only re-exports them.
"""

from simsurvey.config import Config, validate_config
from simsurvey.errors import ConfigError, SimsurveyError, UserError

__all__ = ["Config", "ConfigError", "SimsurveyError", "UserError", "validate_config"]
