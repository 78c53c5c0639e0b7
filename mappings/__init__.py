"""Programme rule files, the evaluator and explanations."""

from creditbridge.mappings.loading import ProgrammeNotFound, RuleFileError, load_programme, parse_programme
from creditbridge.mappings.schema import Programme

__all__ = ["Programme", "ProgrammeNotFound", "RuleFileError", "load_programme", "parse_programme"]
