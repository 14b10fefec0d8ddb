"""The package version, on the ground floor so any module can name it without importing the package.

pyproject.toml reads it from here (`[tool.setuptools.dynamic]`): this is the one place it is written.
"""

__version__ = "0.1.0"
