"""Thin shim so `python cli.py ...` works from a checkout; the CLI lives in timbredb.cli."""

from timbredb.cli import cli

if __name__ == "__main__":
    cli(prog_name="timbredb")
