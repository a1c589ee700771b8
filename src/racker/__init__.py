"""racker: provision a rack of bare-metal servers from its management node."""

__version__ = "0.1.0"
