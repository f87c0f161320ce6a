"""``/metrics`` in the Prometheus text format.

The api's own counters (requests by route and status, WebSocket clients) live in a per-app registry;
the pipeline's figures (readings ingested / rejected, mints, events indexed) are read from the database
at scrape time, so every api instance reports the same totals whichever role did the work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

__all__ = ["ApiMetrics", "Figure", "PipelineFigures"]

# name -> (help, value): a number, or (label name, {label value: number}) for one series per label value.
Figure = tuple[str, float | tuple[str, dict[str, float]]]
PipelineFigures = Callable[[], Awaitable[dict[str, Figure]]]


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gridtokenx_api_requests", "HTTP requests answered, by route template and status",
            ["method", "route", "status"], registry=self.registry,
        )
        self.ws_clients = Gauge("gridtokenx_ws_clients", "WebSocket clients connected to /ws",
                                registry=self.registry)
        self.ws_events = Counter("gridtokenx_ws_events_sent", "events sent to WebSocket clients",
                                 registry=self.registry)
        self.submitted = Counter("gridtokenx_api_transactions_submitted",
                                 "signed transactions submitted, by action and outcome", ["action", "outcome"],
                                 registry=self.registry)

    async def render(self, figures: PipelineFigures | None) -> str:
        text = generate_latest(self.registry).decode()
        if figures is None:
            return text
        lines = []
        for name, (help_text, value) in (await figures()).items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
            if isinstance(value, tuple):
                label_name, series = value
                for label, v in sorted(series.items()):
                    escaped = label.replace("\\", "\\\\").replace('"', '\\"')
                    lines.append(f'{name}{{{label_name}="{escaped}"}} {v}')
            else:
                lines.append(f"{name} {value}")
        return text + "\n".join(lines) + "\n"
