"""Stage 1: K counterfactual rewrites per caption, parsed, validated and typed."""
from .validate import Validator, Verdict, validate

__all__ = ["Validator", "Verdict", "validate"]
