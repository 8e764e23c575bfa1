"""A small Django project for end-to-end tests: `migsite` with the app `greetings`, whose first
migration creates a greeting; its database is a real PostgreSQL (tests/e2e/services.py) given
as DATABASE_URL, and its release command migrates it."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.apps import write_app

MANAGE = """
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "migsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""
SETTINGS = """
import os
from urllib.parse import urlsplit

url = urlsplit(os.environ["DATABASE_URL"])
SECRET_KEY = "e2e-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "migsite.urls"
INSTALLED_APPS = ["greetings"]
MIDDLEWARE = []
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.path.lstrip("/"),
        "USER": url.username,
        "HOST": url.hostname,
        "PORT": str(url.port),
    }
}
USE_TZ = True
"""
URLS = """
from django.http import HttpResponse
from django.urls import path

from greetings.models import Greeting


def index(request):
    return HttpResponse(Greeting.objects.get().text)


urlpatterns = [path("", index)]
"""
WSGI = """
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "migsite.settings")
application = get_wsgi_application()
"""
MODELS = """
from django.db import models


class Greeting(models.Model):
    text = models.CharField(max_length=100)
"""
MIGRATION_1 = """
from django.db import migrations, models


def greet(apps, schema_editor):
    apps.get_model("greetings", "Greeting").objects.create(text="hello from a migration")


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Greeting",
            fields=[
                ("id", models.AutoField(primary_key=True, serialize=False)),
                ("text", models.CharField(max_length=100)),
            ],
        ),
        migrations.RunPython(greet),
    ]
"""
BROKEN_MIGRATION = """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("greetings", "0001_initial")]
    operations = [migrations.RunSQL("ALTER TABLE no_such_table ADD COLUMN x integer")]
"""


def django_app(
    root: Path,
    name: str = "migrating",
    toml: str = "",
    requirements: str = "",
    files: dict[str, dict[str, str]] | None = None,
) -> Path:
    """The Django project `migsite` with the app `greetings` (one model, one migration that greets),
    served as a WSGI app whose release migrates; `toml` and `requirements` add lines, `files`
    adds or replaces files per package folder."""
    app = write_app(
        root,
        name,
        {
            "roost.toml": f'name = "{name}"\nentrypoint = "migsite.wsgi:application"\n'
            f'release = "python manage.py migrate --noinput"\n{toml}',
            "requirements.txt": f"django>=5.2\npsycopg[binary]>=3.2\n{requirements}",
            "manage.py": MANAGE,
        },
    )
    packages: dict[str, dict[str, str]] = {
        "migsite": {"settings.py": SETTINGS, "urls.py": URLS, "wsgi.py": WSGI},
        "greetings": {"models.py": MODELS},
        "greetings/migrations": {"0001_initial.py": MIGRATION_1},
    }
    for package, more in (files or {}).items():
        packages[package] = {**packages[package], **more}
    for package, texts in packages.items():
        (app / package).mkdir()
        (app / package / "__init__.py").write_text("")
        for file, text in texts.items():
            (app / package / file).write_text(text)
    return app
