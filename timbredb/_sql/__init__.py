"""SQL shipped with the package: migrations/ and queries/ of the checkout, mapped here by pyproject.toml."""
