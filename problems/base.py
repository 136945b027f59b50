"""Kept so that ``from problems.base import Problem`` goes on working: the problem
protocol lives in the engine, and problem authors import ``evoquant.api``."""

from evoquant.api import *
from evoquant.api import __all__  # noqa: F401
