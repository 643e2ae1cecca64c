"""Locust integration: ``InvoraUser``, a Locust user whose ``client`` is an :class:`invora.Client`.

    from locust import task
    from invora.loadtest.locust import InvoraUser

    class Accountant(InvoraUser):
        @task
        def browse(self):
            for invoice in self.client.simple.invoices.list(page_size=20):
                ...

    $ locust -f locustfile.py --host 127.0.0.1:50051 --headless -u 50 -r 10 -t 1m

Every unary call — and each page of an auto-paginated list — is reported to Locust as a request named
after its RPC (``invora.simple.invoices.v1.SimpleInvoiceService/List``), typed ``grpc`` or ``rest``, with
the SDK-measured duration, the response size, and on failure an exception of the status's class (so
failures group by status code). The timing comes from a client hook (:mod:`invora.hooks`): nothing is
measured twice and each attempt is reported once.

Connection settings come from Locust's ``--host`` (or the class's ``host``) and the ``INVORA_*``
environment variables the CLI reads (``INVORA_TARGET``, ``INVORA_TRANSPORT``, ``INVORA_TOKEN_URL``,
``INVORA_CLIENT_ID``, ``INVORA_CLIENT_SECRET``, ``INVORA_TOKEN``, ``INVORA_ORG_ID``, ``INVORA_ENV``);
class attributes ``transport``, ``org_id``, ``timeout`` override them. Retries are off by default (a load
test reports what the server answered); set ``retry = invora.Retry(...)`` to measure with them.

All users of a class in one Locust process share one client — one channel and one token, like a real
service — which is also what keeps ramp-ups from hammering the token endpoint. Under ``--master`` /
``--worker`` each worker process has its own.

gRPC and gevent: Locust runs users as greenlets on a monkey-patched standard library, and grpcio must be
told so before it creates a channel. Importing this module does it (``grpc.experimental.gevent.
init_gevent()``, after ``import locust`` has patched); if your locustfile creates gRPC objects at import
time, import this module first.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any, ClassVar

import locust  # patches the standard library for gevent: must precede init_gevent()
from grpc.experimental import gevent as grpc_gevent  # type: ignore[attr-defined]

import invora
from invora.errors import error_class

if TYPE_CHECKING:
    import grpc
    from locust.env import Environment

    from invora.hooks import CallEvent

__all__ = ["InvoraUser"]

grpc_gevent.init_gevent()
# Locust logs at INFO, where httpx (the REST transport) writes a line per request: a load test's log would
# be nothing else, and formatting it costs CPU the load generator needs. An explicit level is respected.
if logging.getLogger("httpx").level == logging.NOTSET:
    logging.getLogger("httpx").setLevel(logging.WARNING)


class InvoraUser(locust.User):
    """A Locust user with ``self.client``, an :class:`invora.Client` that reports every call to Locust."""

    abstract = True
    #: ``"grpc"`` or ``"rest"``; None reads ``INVORA_TRANSPORT`` (default grpc).
    transport: str | None = None
    #: Default tenancy of the client (``x-target-org-id``); None reads ``INVORA_ORG_ID``.
    org_id: str | None = None
    #: Deadline per call, seconds.
    timeout: float = 30.0
    #: Retry policy of the client: off by default so that every server answer is what Locust records.
    retry: invora.Retry | None = None

    client: invora.Client
    _clients: ClassVar[dict[tuple[Any, ...], invora.Client]] = {}

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.client = self._shared_client(environment)

    def _shared_client(self, environment: Environment) -> invora.Client:
        key = (type(self), self.host, id(environment))
        client = InvoraUser._clients.get(key)
        if client is None:
            client = _build_client(self, environment)
            InvoraUser._clients[key] = client

            def close(**_: Any) -> None:
                if InvoraUser._clients.get(key) is client:
                    del InvoraUser._clients[key]
                client.close()

            environment.events.test_stop.add_listener(close)  # type: ignore[no-untyped-call]
        return client


def _build_client(user: InvoraUser, environment: Environment) -> invora.Client:
    from invora.cli.common import UsageError, client_from_args, resolve

    args = argparse.Namespace(target=user.host or None, transport=user.transport, org_id=user.org_id)
    try:
        if args.target is None and resolve(args, "target") is None and resolve(args, "env") is None:
            raise UsageError(
                "no target: pass --host (e.g. 127.0.0.1:50051, or http://127.0.0.1:8080 with "
                "INVORA_TRANSPORT=rest), set INVORA_TARGET, or INVORA_ENV=staging; a load test never "
                "defaults to production"
            )
        transport = resolve(args, "transport") or "grpc"
        fire = environment.events.request.fire
        failure_classes: dict[grpc.StatusCode, Exception] = {}

        def report(event: CallEvent) -> None:
            code = event.code
            if code is None:
                return  # a local failure (cancelled at test stop, a bug in the task): no server answer
            exception = None
            if code.value[0] != 0:
                exception = failure_classes.get(code)
                if exception is None:
                    exception = failure_classes[code] = error_class(code)()
            fire(  # type: ignore[no-untyped-call]
                request_type=transport,
                name=event.method,
                response_time=event.duration * 1000.0,
                response_length=event.response_bytes,
                response=None,
                context={},
                exception=exception,
            )

        options = {"hooks": [lambda _event: report], "retry": user.retry, "timeout": user.timeout}
        return client_from_args(args, options=options)
    except UsageError as exc:
        raise invora.ConfigurationError(f"{type(user).__name__}: {exc}") from None
