import json
import sys

from django.core.management.base import BaseCommand, CommandError

from guard.scanner import scan_many

BATCH = 256


class Command(BaseCommand):
    help = (
        "Scan a JSONL file (one object with a 'text' field per line) with the default policy; print one verdict a line."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="JSONL file, or - for standard input")

    def handle(self, *args, **options):
        source = sys.stdin if options["path"] == "-" else open(options["path"], encoding="utf-8")  # noqa: SIM115
        texts: list[str] = []
        with source:
            for number, line in enumerate(source, 1):
                if not line.strip():
                    continue
                try:
                    texts.append(str(json.loads(line)["text"]))
                except (ValueError, KeyError, TypeError):
                    raise CommandError(f"line {number}: expected a JSON object with a 'text' field") from None
                if len(texts) == BATCH:
                    self._emit(texts)
                    texts = []
        if texts:
            self._emit(texts)

    def _emit(self, texts: list[str]) -> None:
        for verdict in scan_many(texts):
            self.stdout.write(json.dumps(verdict.as_json()))
