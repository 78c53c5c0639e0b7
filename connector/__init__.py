"""Clients of outside systems: the Moodle web-services client and the credit-registry targets."""
