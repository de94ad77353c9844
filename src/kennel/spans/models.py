"""Models for this domain (none yet)."""
