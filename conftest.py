"""Test-wide settings: notebooks executed by the tests run the fast "smoke" budget.

Set LENET_BUDGET=full before running pytest to execute the notebooks' real runs instead.
"""

import os

os.environ.setdefault("LENET_BUDGET", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
