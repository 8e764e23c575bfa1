"""Roost: a self-hosted serverless platform for Python web apps."""

__version__ = "0.1.0"
