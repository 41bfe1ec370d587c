import os

from django.core.wsgi import get_wsgi_application

from config import tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Before the handler loads its middleware chain: Django's instrumentation adds one.
tracing.setup()
application = get_wsgi_application()
