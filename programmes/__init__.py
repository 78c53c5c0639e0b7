"""The programme's one home: the rule-file schema, the loader, the shipped rule files (rules/<id>.yaml) and
`programme_facts`, what sync, the outbox and the reports take from a programme. A leaf: it imports no flow."""

from creditbridge.programmes.facts import ProgrammeFacts, programme_facts
from creditbridge.programmes.loading import (
    NoRuleFile,
    Problem,
    ProgrammeNotFound,
    RuleFileError,
    builtin_programmes,
    builtin_rule_path,
    line_of,
    load_programme,
    load_programme_if_any,
    parse_programme,
)
from creditbridge.programmes.schema import Programme

__all__ = ["NoRuleFile", "Problem", "Programme", "ProgrammeFacts", "ProgrammeNotFound", "RuleFileError",
           "builtin_programmes", "builtin_rule_path", "line_of", "load_programme", "load_programme_if_any",
           "parse_programme", "programme_facts"]
