"""Roster, catalog and topic sync into Moodle."""
