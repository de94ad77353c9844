"""Kennel: a self-hosted server for the Datadog LLM Observability evaluation API."""

__version__ = "0.1.0"
