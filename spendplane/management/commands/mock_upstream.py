from django.core.management.base import BaseCommand

from spendplane.mock_upstream import MockUpstream


class Command(BaseCommand):
    help = "Run the bundled OpenAI- and Anthropic-compatible mock upstream."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100)
        parser.add_argument("--latency-ms", type=float, default=0, help="Delay before each response.")
        parser.add_argument("--chunk-delay-ms", type=float, default=0, help="Delay between stream chunks.")
        parser.add_argument(
            "--stamp-chunks", action="store_true", help="Put the send time (monotonic) in each stream chunk."
        )
        parser.add_argument("--fault", default="", help="Fault for every request: 500, 429, timeout, cut, …")

    def handle(self, *args, **options):
        mock = MockUpstream(
            options["host"],
            options["port"],
            latency_ms=options["latency_ms"],
            chunk_delay_ms=options["chunk_delay_ms"],
            fault=options["fault"],
            stamp_chunks=options["stamp_chunks"],
        )
        self.stdout.write(f"Mock upstream on {mock.url} (OpenAI: {mock.url}/v1, Anthropic: {mock.url})")
        try:
            mock.server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            mock.server.server_close()
