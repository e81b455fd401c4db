"""A SensorThings API v1.1 server for the tests: django-ogc-sensorthings 1.2.0 and its
Django ORM backend on SQLite, served by uvicorn on 127.0.0.1. Runs in the venv that
``scripts/ensure-sta-venv`` makes, never in the agent's:

    <sta-venv>/bin/python tests/sensorthings/site.py PORT DATABASE

The library does the API: URL resolution, request validation against its v1.1 schemas,
$filter/$expand/$select, deep insert, PATCH, navigation links, the dataArray extension.
One thing is changed here, in :class:`IntervalAdapter`: the library's Django backend
has columns for both ends of an Observation's phenomenonTime but writes only its start
(an interval such as ``2026-12-04T10:00:00Z/2026-12-04T10:01:00Z``, which the standard
allows and its own schema validates, made it fail with a 500), so the adapter stores
the end in ``phenomenon_time_end`` and reads the interval back. And its PATCH of a
Location hands the service the request model where every other entity's PATCH hands
it a dict (an AttributeError, a 500), so :func:`_patch_as_dict` makes it a dict.
"""

import sys
from uuid import UUID

from django.conf import settings

PORT = int(sys.argv[1]) if __name__ == "__main__" else 0
DATABASE = sys.argv[2] if __name__ == "__main__" else ":memory:"

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    SECRET_KEY="lokaalmeten-tests-only-" + "x" * 40,
    ROOT_URLCONF=__name__,
    USE_TZ=True,
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "sensorthings.versions.v1_1",
        "sensorthings.versions.v1_1.backends.django",
        "sensorthings.versions.v1_1.extensions.dataarray",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATABASE}},
    SENSORTHINGS_V1_1_SERVICE_URL=f"http://127.0.0.1:{PORT}/sensorthings",
    SENSORTHINGS_V1_1_BACKEND_ADAPTER="__main__.IntervalAdapter",
    SENSORTHINGS_V1_1_ID_TYPE=UUID,
    SENSORTHINGS_V1_1_ID_DELIMITER="'",
    SENSORTHINGS_V1_1_DOCS_ENABLED=False,
)

import django  # noqa: E402 - settings first

django.setup()

from django.urls import include, path  # noqa: E402
from sensorthings.versions.v1_1 import sensorthings_service  # noqa: E402
from sensorthings.versions.v1_1.backends.django.adapter import (  # noqa: E402
    DjangoBackendAdapter,
)
from sensorthings.versions.v1_1.backends.django.models import Observation  # noqa: E402

urlpatterns = [path("sensorthings/", include("sensorthings.versions.v1_1.urls"))]


class IntervalAdapter(DjangoBackendAdapter):
    """The library's backend, keeping both ends of an interval phenomenonTime."""

    def create_observations(self, payload, context=None):
        ends = []
        for dto in payload:
            value = dto.phenomenon_time
            if isinstance(value, str) and "/" in value:
                dto.phenomenon_time, end = value.split("/", 1)
                ends.append(end)
            else:
                ends.append(None)
        ids = super().create_observations(payload, context)
        for pk, end in zip(ids, ends, strict=True):
            if end is not None:
                Observation.objects.filter(pk=pk).update(phenomenon_time_end=end)
        return ids

    def get_observations(self, *args, **kwargs):
        found = super().get_observations(*args, **kwargs)
        ends = dict(Observation.objects.filter(
            pk__in=list(found.entities), phenomenon_time_end__isnull=False
        ).values_list("pk", "phenomenon_time_end"))
        for pk, dto in found.entities.items():
            if pk in ends and isinstance(dto.phenomenon_time, str):
                dto.phenomenon_time = f"{dto.phenomenon_time}/{ends[pk].isoformat()}"
        return found


def _patch_as_dict(update):
    async def update_entity(entity_type, entity_id, payload, context):
        if hasattr(payload, "model_dump"):
            payload = payload.model_dump(exclude_unset=True)
        return await update(entity_type=entity_type, entity_id=entity_id, payload=payload,
                            context=context)
    return update_entity


sensorthings_service.update_entity = _patch_as_dict(sensorthings_service.update_entity)


if __name__ == "__main__":
    import uvicorn
    from django.core.asgi import get_asgi_application
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print("migrated", flush=True)
    uvicorn.run(get_asgi_application(), host="127.0.0.1", port=PORT, log_level="warning")
