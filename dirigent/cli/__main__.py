"""``python -m dirigent.cli``: the same as the ``dirigent`` command."""

import sys

from dirigent.cli import main

sys.exit(main())
