# The engine's test handlers, workflows and fixtures, shared with the review tests.
from tests.orchestration.conftest import flow, run_all  # noqa: F401
