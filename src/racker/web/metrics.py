"""Prometheus metrics of the HTTP server, in a registry of its own (no global state).

The composition root may hand in one shared ``CollectorRegistry`` and register the DHCP and
TFTP servers' collectors in it too; ``/metrics`` then exposes everything in one scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Renders are jinja2 in-process: sub-millisecond to a few ms is the interesting range.
_RENDER_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class HttpMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "racker_http_requests",
            "HTTP requests answered, by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.bytes_sent = Counter(
            "racker_http_sent_bytes",
            "Response body bytes sent, by route",
            ["route"],
            registry=self.registry,
        )
        self.render_seconds = Histogram(
            "racker_http_render_seconds",
            "Time to render a node's iPXE script, Ignition or metadata",
            ["kind"],
            buckets=_RENDER_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Counter]] = {}

    def observe_request(self, method: str, route: str, status: int, sent: int) -> None:
        # The labelled children, once per label set: ``labels()`` validates, converts and
        # locks on every call, a few µs on each request's path (profiled under ab -c 200).
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.bytes_sent.labels(route),
            )
            self._children[key] = children
        children[0].inc()
        if sent:
            children[1].inc(sent)

    def watch(self, name: str, doc: str, read: Callable[[], float], gauge: bool = False) -> None:
        """Expose a number another server keeps (``read`` is called at each scrape): the
        DHCP and TFTP servers count their drops and refusals without knowing Prometheus."""
        self.registry.register(_Read(name, doc, read, gauge))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Read:
    def __init__(self, name: str, doc: str, read: Callable[[], float], gauge: bool) -> None:
        self.name, self.doc, self.read, self.gauge = name, doc, read, gauge

    def collect(self) -> Iterator[Metric]:
        family = (GaugeMetricFamily if self.gauge else CounterMetricFamily)(self.name, self.doc)
        family.add_metric([], float(self.read()))
        yield family
