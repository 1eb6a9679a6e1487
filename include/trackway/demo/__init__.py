"""Demo traffic: a synthetic marketplace ("Nestful") and a sender that speaks through the real Segment SDK.

Kept apart from the pipeline so the demo exercises the collector exactly as a
customer's app would: through ``segment.analytics.Client`` over HTTP.
"""

from trackway.demo.marketplace import Call, generate_day, summarize
from trackway.demo.sender import SendReport, send_calls

__all__ = ["Call", "SendReport", "generate_day", "send_calls", "summarize"]
