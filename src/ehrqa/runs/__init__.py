"""Runs: a recipe executed over a dataset into a run directory that every step writes into and resumes from."""
