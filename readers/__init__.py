"""Readers of the files that come from outside: XLSX workbooks (xlsx.py), CSV/XLSX/YAML tables with their header
resolved (table.py) and the provincial export files read through them (exports.py), shared by sync, mappings and
intake import.

Above the settings and input limits they enforce, below every flow (the import contracts in pyproject.toml)."""
