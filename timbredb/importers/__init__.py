"""Importers: results computed elsewhere, loaded to be analysed beside local ones."""
