"""aegis-tui: watch and steer AEGIS, an agent that distils a teacher LM into a small HRM."""

__version__ = "0.1.0"
