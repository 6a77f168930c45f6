"""``python -m adatok.cli``: the ``adatok`` command line."""

from adatok.cli.app import main

main()
