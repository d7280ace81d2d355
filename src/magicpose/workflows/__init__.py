"""Workflows over the library: many jobs, resumable, shared among processes (`magicpose.workflows.jobs`)."""
