"""Load testing with the SDK: the ``invora bench`` engine and the Locust integration.

:mod:`invora.loadtest.engine` generates load from asyncio (closed or open loop) and
:mod:`invora.loadtest.report` summarises it from an HDR histogram; :mod:`invora.loadtest.locust` runs
the SDK inside Locust, locally or distributed. Nothing here is imported by ``import invora``.
"""
