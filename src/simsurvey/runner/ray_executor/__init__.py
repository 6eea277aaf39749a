"""The Ray executor (``runner.executor: ray``): the administer stage's model calls on Ray Data.

See ``docs/ray.md``. Importing this package does not import Ray; :func:`drive` does.
"""

from simsurvey.runner.ray_executor._drive import drive

__all__ = ["drive"]
