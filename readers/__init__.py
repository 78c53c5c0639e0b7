"""Readers of the files that come from outside (XLSX workbooks), shared by sync, mappings and intake import.

Above the settings and input limits they enforce, below every flow (the import contracts in pyproject.toml)."""
