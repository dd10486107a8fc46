"""This folder is run by `run.py`, which makes transformers' `test_modeling_common.py` importable first; a plain
`pytest` run from the repository root does not collect it."""

import os

if not os.environ.get("TRANSFORMERS_MMVG_COMMON_TESTS"):
    collect_ignore = ["test_common_models.py", "run.py"]
