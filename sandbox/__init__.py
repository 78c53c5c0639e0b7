"""The Moodle-compatible sandbox LMS."""
