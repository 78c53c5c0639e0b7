"""Programme rule files, the evaluator and explanations."""
