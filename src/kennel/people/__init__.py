"""People: user accounts, their roles, and their browser sessions."""
