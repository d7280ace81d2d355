"""User-facing entry points: the `magicpose` command line and the web app."""
