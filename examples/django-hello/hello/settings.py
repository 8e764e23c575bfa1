"""The smallest Django project that serves a page."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "roost-example-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "hello.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
