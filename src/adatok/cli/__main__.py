"""``python -m adatok.cli``: the ``adatok`` command line."""

from adatok.cli import app

app()
