"""stockhub: a stock-and-order hub for physical retailers."""

__version__ = "0.1.0"
