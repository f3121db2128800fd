"""Parse an OpenMetrics page from stdin with prometheus_client's parser (an independent
implementation of the format); print the families and their sample counts as JSON, or exit 1
with the parser's complaint."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

try:
    families = {
        f.name: {"type": f.type, "samples": len(f.samples)}
        for f in text_string_to_metric_families(sys.stdin.read())
    }
except Exception as e:  # the parser's own error, reported to the test
    print(f"parse error: {e}", file=sys.stderr)
    sys.exit(1)
print(json.dumps(families))
