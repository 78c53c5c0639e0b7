"""Programme rule files, the evaluator and explanations."""

from creditbridge.mappings.loading import (
    NoRuleFile,
    ProgrammeNotFound,
    RuleFileError,
    load_programme,
    load_programme_if_any,
    parse_programme,
)
from creditbridge.mappings.schema import Programme

__all__ = ["NoRuleFile", "Programme", "ProgrammeNotFound", "RuleFileError", "load_programme", "load_programme_if_any",
           "parse_programme"]
