"""Keystone's WSGI application, as scripts/keystone.sh serves it with gunicorn.

Keystone builds its configuration from sys.argv (oslo.config) when the
application is created; in a gunicorn worker that is gunicorn's own command
line, which oslo.config rejects. Keystone's settings come from
OS_KEYSTONE_CONFIG_DIR and OS_KEYSTONE_CONFIG_FILES instead.
"""

import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
