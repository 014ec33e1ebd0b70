"""Thin shim so `python cli.py ...` works from a checkout; the CLI lives in timbredb.cli."""

from timbredb.__main__ import main

if __name__ == "__main__":
    main()
