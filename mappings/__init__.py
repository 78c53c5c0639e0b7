"""The evaluator (evaluate.py, and its readable reference evaluate_reference.py), the evaluation of the state store
(service.py, reading through chunk_inputs.py, skipping unchanged people by fingerprint.py, writing through
writer.py, in key ranges by segments.py), the read API of stored results (read.py), explanations, marks, cycles and
the `rules`/`credits` commands. The programme itself (schema, loader, rule files) lives in creditbridge.programmes."""
