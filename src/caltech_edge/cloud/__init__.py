"""The cloud half of the loop (what AWS IoT Core rules, S3, Lambda did).

``sql`` parses a small, safe dialect of AWS IoT SQL (``SELECT ... FROM 'topic/#' WHERE ...``)
into closures (no ``eval``), ``rules`` loads a rules file and runs its actions (store,
republish, Python ``handler(event, context)``), ``store`` keeps results and de-duplicates by
``(device, seq)``, ``service`` is the MQTT process that ties them together, ``uploads``
receives captured frames over HTTP, ``remote`` answers inference requests over MQTT.
"""

from __future__ import annotations

from .._registry import lazy_getattr

__getattr__ = lazy_getattr(
    __name__,
    {
        "parse_query": __name__ + ".sql",
        "Query": __name__ + ".sql",
        "load_rules": __name__ + ".rules",
        "CloudService": __name__ + ".service",
        "remote_predict": __name__ + ".remote",
        "upload_captures": __name__ + ".uploads",
    },
)
