"""The evaluator, explanations, marks, cycles and the `rules`/`credits` commands. The programme itself (schema,
loader, rule files) lives in creditbridge.programmes."""
