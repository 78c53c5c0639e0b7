"""The one `creditbridge` command line."""
