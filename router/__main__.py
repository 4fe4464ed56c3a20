"""``python -m router`` is the ``switchboard`` command."""

from router.cli import main

main()
