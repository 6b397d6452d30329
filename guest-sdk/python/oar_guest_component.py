"""componentize-py's entry module for an OAR module: the module's ``app.run`` as the exported
``run`` (see :mod:`oar_guest.component` for the build command)."""

import app

from oar_guest.component import export

WitWorld = export(app.run)
