"""Dataset readers: each turns a folder under the data dir into clips and tables."""
