"""Subcommands of the `cgdmer` CLI (see `cgdmer_hf.cli`)."""
