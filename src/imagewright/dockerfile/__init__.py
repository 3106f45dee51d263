"""Dockerfile support: a parser with Docker's syntax rules and its variable substitution."""
